//! The OpenAPI document and the router agree: every documented operation is served,
//! and every route is documented.

use serde_json::Value;

use crate::support::*;

#[tokio::test]
async fn the_document_is_openapi_3_1_and_describes_errors() {
    let s = start().await;
    let doc: Value = crate::support::send(&s, reqwest::Method::GET, "/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let types: Vec<&str> = doc["x-problem-types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    for slug in [
        "validation",
        "not-found",
        "unauthenticated",
        "payload-too-large",
        "unsupported-media-type",
        "malformed-body",
        "internal",
    ] {
        assert!(
            types.contains(&format!("https://strongroom.dev/errors/{slug}").as_str()),
            "{slug}"
        );
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|k| k.starts_with('2') || k == "303"),
                "{method} {path} documents no success"
            );
            assert!(
                responses.contains_key("500"),
                "{method} {path} does not document 500"
            );
            for (status, r) in responses.iter().filter(|(k, _)| k.as_str() >= "400") {
                assert!(
                    r["content"]["application/problem+json"].is_object(),
                    "{method} {path} {status} is not problem+json"
                );
            }
            if op.get("requestBody").is_some() {
                for status in ["400", "413", "415", "422"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} lacks {status}"
                    );
                }
            }
            if op.get("security").is_some() {
                assert!(responses.contains_key("401"), "{method} {path} lacks 401");
            }
        }
    }
}

/// Fills `{param}` segments with a plausible value.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                "probe-value"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let s = start().await;
    let c = s.client();
    let doc: Value = c
        .get(s.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut probed = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let resp = c.request(m, s.url(&concrete(path))).send().await.unwrap();
            let status = resp.status().as_u16();
            if status == 404 || status == 405 {
                let body: Value = resp.json().await.unwrap();
                let t = body["type"].as_str().unwrap_or_default();
                assert!(
                    !t.ends_with("/no-route") && !t.ends_with("/method-not-allowed"),
                    "{method} {path} is documented but not routed"
                );
            }
            probed += 1;
        }
    }
    assert!(probed >= 7, "only {probed} operations documented");
}

/// Routes can only be added through `utoipa_axum::routes!` in `openapi::api()`, which
/// documents them by construction. This fails if any code registers a route another
/// way (`.route(`, `.nest(`, `.merge(`, `.route_service(`).
#[test]
fn no_route_bypasses_the_documented_router() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../strongroom-http/src");
    let mut offenders = Vec::new();
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                // Unit-test modules (at the end of a file, by convention) build toy routers.
                let code_part = text.split("#[cfg(test)]").next().unwrap_or_default();
                for (n, line) in code_part.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or("");
                    if [
                        ".route(",
                        ".nest(",
                        ".merge(",
                        ".route_service(",
                        ".nest_service(",
                    ]
                    .iter()
                    .any(|p| code.contains(p))
                    {
                        offenders.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "routes registered outside routes!():\n{}",
        offenders.join("\n")
    );
}

/// Every `$ref` in the document resolves: a dangling one (a path parameter's type never
/// registered as a component) makes tools like schemathesis skip the operation.
#[test]
fn every_reference_in_the_document_resolves() {
    fn walk(v: &Value, doc: &Value, missing: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    let target = r.strip_prefix('#').and_then(|p| doc.pointer(p));
                    if target.is_none() {
                        missing.push(r.clone());
                    }
                }
                for x in m.values() {
                    walk(x, doc, missing);
                }
            }
            Value::Array(a) => {
                for x in a {
                    walk(x, doc, missing);
                }
            }
            _ => {}
        }
    }
    let doc = serde_json::to_value(strongroom_http::openapi::document()).unwrap();
    let mut missing = Vec::new();
    walk(&doc, &doc, &mut missing);
    missing.sort();
    missing.dedup();
    assert!(missing.is_empty(), "dangling references: {missing:?}");
}
