// Test SAML 2.0 IdP on loopback: npm saml-idp (samlp 7.1.1) with test hooks.
//
//   node idp.cjs --port 0 --cert idp-cert.pem --key idp-key.pem --issuer urn:test:idp \
//                --acsUrl http://127.0.0.1:PORT/... --audience <SP entity id>
// Any other saml-idp option passes through (--signResponse false, --encryptAssertion ...).
// Port 0 (the default here) takes a free port; stdout then carries `READY http://127.0.0.1:<port>`.
//
// Hooks (besides saml-idp's own POST /settings, which sets any IdP option at run time, e.g.
// signResponse=false, signAssertion=false, lifetimeInSeconds=1, audience=..., issuer=...):
//   POST /__test/authn-age?secs=N  later assertions carry AuthnInstant = now - N s, as an IdP
//                                  that ignored ForceAuthn and reused an old session would (0 = now).
//   GET  /__test/last-request      the last AuthnRequest the IdP parsed (id, issuer, acsUrl, forceAuthn).
// Env SAML_IDP_ENC_ALG: data-encryption algorithm of encrypted assertions (default aes256-cbc).
// stdout carries only the READY line; saml-idp's banner, request log and XML dumps go to stderr.
const path = require('node:path');
const http = require('node:http');

const idpDir = path.dirname(require.resolve('saml-idp/package.json'));
const samlpDir = path.dirname(require.resolve('samlp/package.json', { paths: [idpDir] }));
const from = (mod, dir) => require.resolve(mod, { paths: [dir] });

// 1. AuthnInstant override: saml's sign module strips/serialises the assertion DOM through
//    exports.unsigned(doc) for both signed and unsigned assertions, before any signature.
let authnAgeSecs = 0;
const signMod = require(from('saml/lib/xml/sign', samlpDir));
const origUnsigned = signMod.unsigned;
signMod.unsigned = function unsigned(doc, ...rest) {
  if (authnAgeSecs > 0) {
    const st = doc.getElementsByTagName('saml:AuthnStatement')[0];
    if (st) st.setAttribute('AuthnInstant', new Date(Date.now() - authnAgeSecs * 1000).toISOString());
  }
  return origUnsigned.call(this, doc, ...rest);
};

// Encrypted assertions: samlp passes no encryptionAlgorithm through, so saml-idp always uses
// aes256-cbc + rsa-oaep-mgf1p. SAML_IDP_ENC_ALG (e.g. http://www.w3.org/2009/xmlenc11#aes128-gcm)
// overrides the data-encryption algorithm.
const encMod = require(from('saml/lib/xml/encrypt', samlpDir));
const origEnc = encMod.fromEncryptXmlOptions;
encMod.fromEncryptXmlOptions = function fromEncryptXmlOptions(options) {
  const alg = process.env.SAML_IDP_ENC_ALG;
  return origEnc.call(this, alg ? { ...options, encryptionAlgorithm: alg } : options);
};

// 2. Test routes: wrap the express factory saml-idp uses, so they are mounted first.
const expressPath = from('express', idpDir);
const express = require(expressPath);
let lastRequest = null;
function wrappedExpress(...args) {
  const app = express(...args);
  app.post('/__test/authn-age', (req, res) => {
    authnAgeSecs = Number(new URL(req.url, 'http://x').searchParams.get('secs') || 0);
    res.json({ authnAgeSecs });
  });
  app.get('/__test/last-request', (req, res) => res.json(lastRequest));
  return app;
}
Object.assign(wrappedExpress, express);
require.cache[expressPath].exports = wrappedExpress;

const samlp = require(from('samlp', idpDir));
const origParse = samlp.parseRequest;
samlp.parseRequest = function parseRequest(req, opts, cb) {
  const done = typeof opts === 'function' ? opts : cb;
  const wrapped = (err, data) => { if (data) lastRequest = data; done(err, data); };
  return typeof opts === 'function' ? origParse.call(this, req, wrapped) : origParse.call(this, req, opts, wrapped);
};

// 3. Report the real port once listening (port 0 = any free port).
const origCreate = http.createServer;
http.createServer = function createServer(...args) {
  const server = origCreate.apply(this, args);
  server.once('listening', () => stdout(`READY http://127.0.0.1:${server.address().port}\n`));
  return server;
};

// saml-idp's banner (console.log) and morgan request log (process.stdout) go to stderr, so a
// test that reads stdout for READY and then stops reading never blocks the IdP on a full pipe.
const stdout = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);

const argv = process.argv.slice(2);
if (!argv.includes('--host')) argv.push('--host', '127.0.0.1');
if (!argv.includes('--port') && !argv.includes('-p')) argv.push('--port', '0');
process.argv = [process.argv[0], 'saml-idp', ...argv];
require(path.join(idpDir, 'app.js')).main();
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
