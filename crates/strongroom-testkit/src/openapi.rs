//! Finding the operation of an OpenAPI document that a concrete request addresses.

use serde_json::Value;

/// The operation of `doc` for `method` on the concrete `path` (templates such as
/// `/v1/t/{tenant}/users/{id}` match one segment per parameter; a final `{path}`
/// matches the rest).
pub fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> Option<&'a Value> {
    let method = method.to_ascii_lowercase();
    doc["paths"]
        .as_object()?
        .iter()
        .find(|(template, _)| matches(template, path))
        .and_then(|(_, item)| item.get(&method))
}

fn matches(template: &str, path: &str) -> bool {
    let (mut t, mut p) = (template.split('/'), path.split('/'));
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some("{path}"), Some(_)) => return true,
            (Some(a), Some(b)) if a.starts_with('{') && a.ends_with('}') && !b.is_empty() => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}
