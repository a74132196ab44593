//! Turning a source's text into caption material: HTML to plain text, tags to hashtags, and a
//! caption cut to Instagram's length.

use super::{MAX_CAPTION_CHARS, MAX_HASHTAGS};

/// Drops tags, decodes the common entities, and collapses whitespace (paragraphs become spaces).
pub fn plain_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' if in_tag => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    decode_entities(&text).split_whitespace().collect::<Vec<_>>().join(" ")
}

fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let decoded = rest.find(';').filter(|&end| end <= 10).and_then(|end| {
            let entity = &rest[1..end];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some(' '),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `["café", "new-arrival", "Gift"]` → `#café #newarrival #Gift`: letters, digits and `_` only
/// (Instagram ends a hashtag at anything else), no repeats, at most Instagram's 30.
pub fn hashtags<'a>(tags: impl IntoIterator<Item = &'a str>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for tag in tags {
        let word: String = tag.chars().filter(|c| c.is_alphanumeric() || *c == '_').collect();
        if !word.is_empty() && !seen.iter().any(|s| s.to_lowercase() == word.to_lowercase()) {
            seen.push(word);
        }
        if seen.len() == MAX_HASHTAGS {
            break;
        }
    }
    seen.iter().map(|w| format!("#{w}")).collect::<Vec<_>>().join(" ")
}

/// A long description must not make an event unpostable: cut at Instagram's limit, with `…`.
pub fn fit_caption(caption: String) -> String {
    if caption.chars().count() <= MAX_CAPTION_CHARS {
        return caption;
    }
    let mut cut: String = caption.chars().take(MAX_CAPTION_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_becomes_plain_text() {
        let html = "<p>Hand-thrown mug with a speckled glaze &amp; a 350&nbsp;ml capacity.</p>\n<ul><li>Dishwasher safe</li><li>Made in small batches</li></ul>";
        assert_eq!(
            plain_text(html),
            "Hand-thrown mug with a speckled glaze & a 350 ml capacity. Dishwasher safe Made in small batches"
        );
        assert_eq!(plain_text("a &#8212; b &#x2014; c &bogus; & d"), "a — b — c &bogus; & d");
    }

    #[test]
    fn tags_become_hashtags() {
        assert_eq!(hashtags("café, ceramics, gift, new-arrival".split(", ")), "#café #ceramics #gift #newarrival");
        assert_eq!(hashtags(["Gift", "gift", "", "!!"]), "#Gift");
        let many: Vec<String> = (0..40).map(|i| format!("t{i}")).collect();
        assert_eq!(hashtags(many.iter().map(String::as_str)).matches('#').count(), MAX_HASHTAGS);
    }

    #[test]
    fn long_captions_are_cut_to_the_limit() {
        let cut = fit_caption("é".repeat(3000));
        assert_eq!(cut.chars().count(), MAX_CAPTION_CHARS);
        assert!(cut.ends_with('…'));
        assert_eq!(fit_caption("short".into()), "short");
    }
}
