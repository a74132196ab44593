//! Request parameters and the access token. Graph takes parameters from the query string, a
//! form body or a JSON body (reference §2); they are merged, the body winning.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, header};
use serde_json::Value;

use crate::error::GraphError;

#[derive(Debug, Default)]
pub(crate) struct Params(BTreeMap<String, String>);

impl Params {
    pub fn parse(
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Params, GraphError> {
        let mut params = BTreeMap::new();
        if let Some(query) = query {
            params.extend(form_urlencoded::parse(query.as_bytes()).into_owned());
        }
        if !body.iter().all(u8::is_ascii_whitespace) {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_ascii_lowercase();
            let looks_like_json = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
            if content_type.contains("json") || (content_type.is_empty() && looks_like_json) {
                params.extend(parse_json_body(body)?);
            } else if content_type.is_empty()
                || content_type.starts_with("application/x-www-form-urlencoded")
            {
                params.extend(form_urlencoded::parse(body).into_owned());
            } else {
                return Err(GraphError::invalid_parameter(format!(
                    "Unsupported request body content type '{content_type}'; send application/x-www-form-urlencoded or application/json"
                )));
            }
        }
        Ok(Params(params))
    }

    /// The parameter's value; an empty value counts as absent, as in Graph.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// A boolean parameter; `None` when absent, an error when present but not a boolean.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, GraphError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(None),
            Some("true" | "1") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(other) => Err(GraphError::invalid_parameter(format!(
                "Param {name} must be a boolean, got '{other}'"
            ))),
        }
    }

    /// The `fields` parameter split into names; `None` when absent.
    pub fn fields(&self) -> Option<Vec<String>> {
        self.get("fields").map(|f| {
            f.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
    }
}

/// A JSON body must be an object; nested arrays/objects (children, user_tags, collaborators) are
/// kept as their JSON text, the same form they take in a query string.
fn parse_json_body(body: &[u8]) -> Result<Vec<(String, String)>, GraphError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        GraphError::invalid_parameter(format!("The request body is not valid JSON: {e}"))
    })?;
    let Value::Object(object) = value else {
        return Err(GraphError::invalid_parameter(
            "The JSON request body must be an object",
        ));
    };
    Ok(object
        .into_iter()
        .filter_map(|(key, value)| {
            let text = match value {
                Value::Null => return None,
                Value::String(s) => s,
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                other => other.to_string(),
            };
            Some((key, text))
        })
        .collect())
}

/// The token from `Authorization: Bearer …` (or `OAuth …`), else from the `access_token`
/// parameter (accepted like the real API; the request log shows which one a client used).
pub(crate) fn access_token(headers: &HeaderMap, params: Option<&Params>) -> Option<String> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            let scheme_ok =
                scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth");
            Some(token.trim())
                .filter(|t| scheme_ok && !t.is_empty())
                .map(str::to_string)
        });
    from_header.or_else(|| params?.get("access_token").map(str::to_string))
}

/// A list parameter given either as a JSON array or as comma-separated text.
pub(crate) fn parse_list(name: &str, text: &str) -> Result<Vec<String>, GraphError> {
    let text = text.trim();
    if text.starts_with('[') {
        let items: Vec<Value> = serde_json::from_str(text).map_err(|_| {
            GraphError::invalid_parameter(format!(
                "Param {name} must be a JSON array or a comma-separated list"
            ))
        })?;
        items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.trim().to_string()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(GraphError::invalid_parameter(format!(
                    "Param {name} must contain strings or numbers"
                ))),
            })
            .filter(|item| !matches!(item, Ok(s) if s.is_empty()))
            .collect()
    } else {
        Ok(text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(content_type: Option<&str>, authorization: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(ct) = content_type {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        }
        if let Some(auth) = authorization {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        }
        headers
    }

    #[test]
    fn body_wins_over_query() {
        let h = headers(Some("application/x-www-form-urlencoded"), None);
        let p = Params::parse(Some("caption=q&image_url=a"), &h, b"caption=b%20c").unwrap();
        assert_eq!(p.get("caption"), Some("b c"));
        assert_eq!(p.get("image_url"), Some("a"));
    }

    #[test]
    fn json_body_is_flattened() {
        let h = headers(Some("application/json"), None);
        let p = Params::parse(
            None,
            &h,
            br#"{"children":["1",2],"is_carousel_item":true,"n":null}"#,
        )
        .unwrap();
        assert_eq!(p.get("children"), Some(r#"["1",2]"#));
        assert_eq!(p.bool("is_carousel_item").unwrap(), Some(true));
        assert!(!p.has("n"));
        assert_eq!(
            parse_list("children", p.get("children").unwrap()).unwrap(),
            vec!["1", "2"]
        );
    }

    #[test]
    fn malformed_json_is_a_code_100() {
        let h = headers(Some("application/json"), None);
        let err = Params::parse(None, &h, b"{nope").unwrap_err();
        assert_eq!(err.code, 100);
        let err = Params::parse(None, &h, b"[1]").unwrap_err();
        assert_eq!(err.code, 100);
    }

    #[test]
    fn token_from_header_or_param() {
        let p = Params::parse(Some("access_token=q"), &HeaderMap::new(), b"").unwrap();
        assert_eq!(
            access_token(&headers(None, Some("Bearer abc")), Some(&p)).as_deref(),
            Some("abc")
        );
        assert_eq!(
            access_token(&headers(None, Some("OAuth abc")), Some(&p)).as_deref(),
            Some("abc")
        );
        assert_eq!(
            access_token(&headers(None, None), Some(&p)).as_deref(),
            Some("q")
        );
        assert_eq!(access_token(&headers(None, Some("Bearer ")), None), None);
    }

    #[test]
    fn comma_separated_lists() {
        assert_eq!(
            parse_list("children", " 1, 2 ,,3").unwrap(),
            vec!["1", "2", "3"]
        );
        assert!(parse_list("children", "[{}]").is_err());
    }
}
