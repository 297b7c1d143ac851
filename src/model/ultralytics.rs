//! Ultralytics exports carry their own metadata (`names`, `imgsz`, `stride`,
//! `task`), written as Python literals. Translating it to edgeseg's keys lets
//! any ultralytics `-seg` ONNX export run without flags: RGB input scaled to
//! 0..1, letterboxed with gray 114, classes from `names`.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;

/// Whether `props` look like an ultralytics export.
pub fn is_ultralytics(props: &HashMap<String, String>) -> bool {
    props.contains_key("names") && props.contains_key("task") && props.contains_key("imgsz")
}

/// Add `edgeseg.*` keys derived from ultralytics' metadata (keys already
/// present, e.g. written by our scripts, win).
pub fn translate(props: &mut HashMap<String, String>) -> Result<()> {
    if !is_ultralytics(props) {
        return Ok(());
    }
    let task = props["task"].trim().to_string();
    if task != "segment" {
        bail!("ultralytics task {task:?}: edgeseg runs segmentation models; fix: export a -seg model (task=segment)");
    }
    let names = parse_names(&props["names"]).context("ultralytics metadata field `names`")?;
    let (h, w) = parse_imgsz(&props["imgsz"]).context("ultralytics metadata field `imgsz`")?;
    let classes = serde_json::to_string(&names)?;
    let name = props
        .get("description")
        .map(|d| d.split(" model").next().unwrap_or(d).trim().to_string())
        .unwrap_or_else(|| "ultralytics-seg".into());
    for (k, v) in [
        ("task", "instance".to_string()),
        ("classes", classes),
        ("input_size", format!("{w}x{h}")),
        ("color", "rgb".into()),
        ("mean", "[0.0]".into()),
        ("std", "[1.0]".into()),
        ("resize", "letterbox".into()),
        ("name", name),
    ] {
        props.entry(format!("edgeseg.{k}")).or_insert(v);
    }
    Ok(())
}

/// `{0: 'scratch', 1: "spot"}` → ["scratch", "spot"] (ids must be 0..n).
pub fn parse_names(s: &str) -> Result<Vec<String>> {
    let body = s.trim().strip_prefix('{').and_then(|b| b.strip_suffix('}')).context("expected a {id: 'name', ...} dict")?;
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let (id, after) = rest.split_once(':').context("expected `id: 'name'`")?;
        let id: usize = id.trim().parse().with_context(|| format!("class id {:?} is not a number", id.trim()))?;
        let after = after.trim_start();
        let quote = after.chars().next().filter(|c| *c == '\'' || *c == '"').context("class name must be quoted")?;
        let inner = &after[1..];
        let end = inner.find(quote).context("unterminated class name")?;
        out.push((id, inner[..end].to_string()));
        rest = inner[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    out.sort_by_key(|(id, _)| *id);
    if out.iter().enumerate().any(|(i, (id, _))| i != *id) {
        bail!("class ids are not 0..{}", out.len());
    }
    Ok(out.into_iter().map(|(_, n)| n).collect())
}

/// `[320, 320]` (height, width) or `320`.
fn parse_imgsz(s: &str) -> Result<(usize, usize)> {
    let nums: Vec<usize> = s.trim_matches(|c| c == '[' || c == ']' || c == '(' || c == ')').split(',').map(|p| p.trim().parse()).collect::<Result<_, _>>()?;
    match nums.as_slice() {
        [n] => Ok((*n, *n)),
        [h, w] => Ok((*h, *w)),
        _ => bail!("expected [height, width], got {s:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_python_literals() {
        assert_eq!(parse_names("{1: 'spot', 0: 'scratch'}").unwrap(), ["scratch", "spot"]);
        assert_eq!(parse_imgsz("[320, 256]").unwrap(), (320, 256));
        assert_eq!(parse_imgsz("640").unwrap(), (640, 640));
        assert!(parse_names("{0: 'a', 2: 'b'}").is_err());
    }

    #[test]
    fn translates_a_segment_export() {
        let mut p: HashMap<String, String> = [
            ("task", "segment"),
            ("names", "{0: 'scratch', 1: 'pit'}"),
            ("imgsz", "[320, 320]"),
            ("stride", "32"),
            ("description", "Ultralytics YOLOv8n-seg model trained on x.yaml"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        translate(&mut p).unwrap();
        assert_eq!(p["edgeseg.task"], "instance");
        assert_eq!(p["edgeseg.classes"], r#"["scratch","pit"]"#);
        assert_eq!(p["edgeseg.input_size"], "320x320");
        assert_eq!(p["edgeseg.resize"], "letterbox");
        assert_eq!(p["edgeseg.name"], "Ultralytics YOLOv8n-seg");
        p.insert("task".into(), "detect".into());
        assert!(translate(&mut p).is_err());
    }
}
