// Test OpenID Provider on loopback: oidc-provider 9.x with its built-in dev interactions.
//
//   node idp.mjs [--port 0] [--client-id ID --client-secret S --redirect-uri URI[,URI2]]
//                [--alg RS256|ES256] [--clients-json '[{...client metadata...}]'] [--auto-consent]
// Every option can also come from the environment: OIDC_PORT, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET,
// OIDC_REDIRECT_URI, OIDC_ALG, OIDC_CLIENTS_JSON, OIDC_AUTO_CONSENT=1.
// Port 0 (the default) takes a free port; the first stdout line is `READY <issuer>` once it listens.
//
// Test hooks (loopback only, outside the provider's routes):
//   POST /__test/rotate[?drop_old=1]  new RSA + EC signing keys, used from now on; the old ones
//                                     stay published in the JWKS unless drop_old=1.
//   POST /__test/id-token-ttl?secs=N  lifetime of the ID tokens issued from now on (default 3600).
//   POST /__test/stale-login?secs=N   later logins report auth_time = now - N s, as an IdP that
//                                     ignored prompt=login/max_age and reused an old session would
//                                     (0 = real time).
//   POST /__test/tamper?mode=M        the next token response's ID token is altered, as an
//                                     attacker on the path (or a broken IdP) would: signature
//                                     (a flipped signature byte), payload (a changed claim, the
//                                     signature kept), aud / nonce / iss / expired / azp (re-signed
//                                     with the IdP's own key; azp1: one audience but a foreign
//                                     azp; future: issued an hour from now), kid (signed by a key the JWKS does
//                                     not publish), none (alg none, no signature).
//   GET  /__test/keys                 the public JWKS (kids in signing order).
import { createServer } from 'node:http';
import { createPrivateKey, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { parseArgs } from 'node:util';
import Provider from 'oidc-provider';

const { values: opt } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.OIDC_PORT ?? '0' },
    'client-id': { type: 'string', default: process.env.OIDC_CLIENT_ID ?? 'strongroom' },
    'client-secret': { type: 'string', default: process.env.OIDC_CLIENT_SECRET ?? 'strongroom-secret' },
    'redirect-uri': { type: 'string', default: process.env.OIDC_REDIRECT_URI ?? 'http://127.0.0.1:8080/sso/oidc/callback' },
    alg: { type: 'string', default: process.env.OIDC_ALG ?? 'RS256' },
    'clients-json': { type: 'string', default: process.env.OIDC_CLIENTS_JSON },
    'auto-consent': { type: 'boolean', default: process.env.OIDC_AUTO_CONSENT === '1' },
  },
});

// Accounts: any login name is accepted by the dev interactions (the password is ignored).
// Known names get fixed claims; any other name gets derived ones.
const ACCOUNTS = {
  alice: { email: 'alice@example.test', name: 'Alice Analyst', groups: ['qa', 'signers'] },
  bob: { email: 'bob@example.test', name: 'Bob Builder', groups: ['viewers'] },
};
function claimsFor(id) {
  return ACCOUNTS[id] ?? { email: `${id}@example.test`, name: `User ${id}`, groups: [] };
}

function newSigningKeys() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return [
    { ...rsa, kid: `rsa-${randomUUID()}`, use: 'sig', alg: 'RS256' },
    { ...ec, kid: `ec-${randomUUID()}`, use: 'sig', alg: 'ES256' },
  ];
}

let idTokenTtl = 3600;
let tamperMode = null;

const b64u = (x) => Buffer.from(x).toString('base64url');
function signJwt(header, payload, jwk) {
  const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(payload))}`;
  const key = createPrivateKey({ key: jwk, format: 'jwk' });
  const sig = jwk.kty === 'EC'
    ? sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' })
    : sign('sha256', Buffer.from(input), key);
  return `${input}.${b64u(sig)}`;
}

function tamper(idToken, mode) {
  const [h, p, s] = idToken.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  const payload = JSON.parse(Buffer.from(p, 'base64url'));
  const own = keys.find((k) => k.kid === header.kid);
  const now = Math.floor(Date.now() / 1000);
  switch (mode) {
    case 'signature': {
      const sig = Buffer.from(s, 'base64url');
      sig[Math.floor(sig.length / 2)] ^= 0x01;
      return `${h}.${p}.${b64u(sig)}`;
    }
    case 'payload':
      return `${h}.${b64u(JSON.stringify({ ...payload, email: 'mallory@example.test', sub: 'mallory' }))}.${s}`;
    case 'aud': return signJwt(header, { ...payload, aud: 'another-client' }, own);
    case 'azp': return signJwt(header, { ...payload, aud: [payload.aud, 'another-client'], azp: 'another-client' }, own);
    case 'azp1': return signJwt(header, { ...payload, azp: 'another-client' }, own);
    case 'future': return signJwt(header, { ...payload, iat: now + 3600, exp: now + 7200 }, own);
    case 'nonce': return signJwt(header, { ...payload, nonce: 'not-the-nonce' }, own);
    case 'iss': return signJwt(header, { ...payload, iss: 'http://127.0.0.1:1' }, own);
    case 'expired': return signJwt(header, { ...payload, iat: now - 120, exp: now - 60 }, own);
    case 'kid': {
      const rogue = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
      return signJwt({ ...header, alg: 'RS256', kid: `rogue-${randomUUID()}` }, payload, rogue);
    }
    case 'none':
      return `${b64u(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${p}.`;
    default: throw new Error(`unknown tamper mode ${mode}`);
  }
}

// Rewrites the body of one token response (koa sets its headers, then calls end once).
function tamperTokenResponse(res, mode) {
  const chunks = [];
  const end = res.end.bind(res);
  const write = res.write;
  const writeHead = res.writeHead;
  let head = null;
  res.writeHead = (...args) => { head = args; return res; };
  res.write = (chunk) => { if (chunk) chunks.push(Buffer.from(chunk)); return true; };
  res.end = (chunk, ...rest) => {
    if (chunk && typeof chunk !== 'function') chunks.push(Buffer.from(chunk));
    let body = Buffer.concat(chunks).toString();
    try {
      const json = JSON.parse(body);
      if (json.id_token) { json.id_token = tamper(json.id_token, mode); body = JSON.stringify(json); }
    } catch (e) { console.error('tamper failed', e); }
    // Node's end() writes implicit headers through res.writeHead: put the originals back.
    res.write = write;
    res.writeHead = writeHead;
    if (head) {
      const [code, ...more] = head;
      const headers = { ...(more.find((x) => x && typeof x === 'object') ?? {}) };
      for (const k of Object.keys(headers)) if (k.toLowerCase() === 'content-length') delete headers[k];
      res.writeHead(code, { ...headers, 'content-length': Buffer.byteLength(body) });
    } else if (!res.headersSent) {
      res.setHeader('content-length', Buffer.byteLength(body));
    }
    return end(body);
  };
}
let staleLoginSecs = 0;
let keys = newSigningKeys(); // the first key of an alg signs; the rest are only published
const cookieKeys = [randomUUID(), randomUUID()];

const server = createServer((req, res) => handle(req, res));
await new Promise((resolve) => server.listen(Number(opt.port), '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const clients = opt['clients-json'] ? JSON.parse(opt['clients-json']) : [{
  client_id: opt['client-id'],
  client_secret: opt['client-secret'],
  redirect_uris: opt['redirect-uri'].split(','),
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic', // client_secret_post also accepted below
  id_token_signed_response_alg: opt.alg,
}];

function makeProvider() {
  const provider = new Provider(issuer, {
    clients,
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    jwks: { keys },
    cookies: { keys: cookieKeys },
    pkce: { required: () => true }, // S256 only (the only method oidc-provider 9 supports)
    // Scope-requested claims go into the ID token itself too (not only /me).
    conformIdTokenClaims: false,
    scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    async findAccount(_ctx, sub) {
      const c = claimsFor(sub);
      return {
        accountId: sub,
        async claims() {
          return { sub, email: c.email, email_verified: true, name: c.name, groups: c.groups };
        },
      };
    },
    ...(opt['auto-consent'] ? {
      // First-party client: grant whatever it asks, so the consent page never shows.
      async loadExistingGrant(ctx) {
        const grantId = ctx.oidc.result?.consent?.grantId
          || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
        if (grantId) {
          const g = await ctx.oidc.provider.Grant.find(grantId);
          if (g) return g;
        }
        const grant = new ctx.oidc.provider.Grant({
          clientId: ctx.oidc.client.clientId,
          accountId: ctx.oidc.session.accountId,
        });
        grant.addOIDCScope(ctx.oidc.params.scope ?? 'openid');
        await grant.save();
        return grant;
      },
    } : {}),
    ttl: {
      IdToken: () => idTokenTtl,
      AccessToken: 600,
      AuthorizationCode: 60,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
    features: {
      devInteractions: { enabled: true },
      userinfo: { enabled: true },
      revocation: { enabled: true },
    },
  });
  provider.on('server_error', (_ctx, err) => console.error('server_error', err));
  // The dev interactions finish a login through provider.interactionFinished({ login: { accountId } });
  // result.login.ts is the authentication time that becomes auth_time.
  const finished = provider.interactionFinished.bind(provider);
  provider.interactionFinished = (req, res, result, options) => {
    if (result?.login && staleLoginSecs > 0) {
      result.login.ts = Math.floor(Date.now() / 1000) - staleLoginSecs;
    }
    return finished(req, res, result, options);
  };
  return provider;
}

let callback = makeProvider().callback();

function publicJwks() {
  return {
    keys: keys.map(({ kty, kid, use, alg, n, e, crv, x, y }) =>
      Object.fromEntries(Object.entries({ kty, kid, use, alg, n, e, crv, x, y }).filter(([, v]) => v !== undefined))),
  };
}

function handle(req, res) {
  const url = new URL(req.url, issuer);
  if (url.pathname.startsWith('/__test/')) {
    const reply = (code, body) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'POST' && url.pathname === '/__test/rotate') {
      const fresh = newSigningKeys();
      keys = url.searchParams.get('drop_old') === '1' ? fresh : [...fresh, ...keys];
      callback = makeProvider().callback(); // in-memory adapter storage is module-wide: sessions survive
      return reply(200, publicJwks());
    }
    if (req.method === 'POST' && url.pathname === '/__test/id-token-ttl') {
      idTokenTtl = Number(url.searchParams.get('secs'));
      return reply(200, { idTokenTtl });
    }
    if (req.method === 'POST' && url.pathname === '/__test/stale-login') {
      staleLoginSecs = Number(url.searchParams.get('secs'));
      return reply(200, { staleLoginSecs });
    }
    if (req.method === 'POST' && url.pathname === '/__test/tamper') {
      tamperMode = url.searchParams.get('mode');
      return reply(200, { tamperMode });
    }
    if (req.method === 'GET' && url.pathname === '/__test/keys') return reply(200, publicJwks());
    return reply(404, { error: 'not_found' });
  }
  if (tamperMode && req.method === 'POST' && url.pathname === '/token') {
    tamperTokenResponse(res, tamperMode);
    tamperMode = null;
  }
  return callback(req, res);
}

process.stdout.write(`READY ${issuer}\n`);
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
