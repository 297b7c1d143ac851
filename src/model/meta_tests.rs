use super::*;

fn props(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (format!("edgeseg.{k}"), v.to_string())).collect()
}

fn shapes(input: &[Option<usize>], output: &[Option<usize>]) -> GraphShapes {
    GraphShapes { input: input.to_vec(), output: output.to_vec(), output_op: None }
}

const FIXED_GRAY: [Option<usize>; 4] = [Some(1), Some(1), Some(256), Some(256)];
const OUT5: [Option<usize>; 4] = [Some(1), Some(5), Some(256), Some(256)];

#[test]
fn parses_sizes_lists_and_classes() {
    assert_eq!(parse_size("320x240").unwrap(), (320, 240));
    assert_eq!(parse_size("512").unwrap(), (512, 512));
    assert!(parse_size("0x5").is_err() && parse_size("big").is_err());
    assert_eq!(parse_floats("[0.5, 0.25]").unwrap(), vec![0.5, 0.25]);
    assert_eq!(parse_floats("0.485,0.456,0.406").unwrap().len(), 3);
    assert!(parse_floats("abc").is_err());
    assert_eq!(parse_classes(r#"["bg","a,b"]"#).unwrap(), vec!["bg", "a,b"]);
    assert_eq!(parse_classes("bg, scratch").unwrap(), vec!["bg", "scratch"]);
}

#[test]
fn metadata_drives_everything() {
    let p = props(&[
        ("classes", r#"["background","scratch","spot","crack","pit"]"#),
        ("color", "gray"),
        ("mean", "[0.48]"),
        ("std", "[0.11]"),
        ("input_size", "256x256"),
    ]);
    let m = resolve(&p, &shapes(&FIXED_GRAY, &OUT5), &MetaOverrides::default()).unwrap();
    assert_eq!((m.width, m.height, m.channels()), (256, 256, 1));
    assert_eq!(m.mean, vec![0.48]);
    assert_eq!(m.activation, Activation::Softmax);
    assert!(m.origins.contains(&("classes", Origin::Metadata)));
}

#[test]
fn bare_model_takes_defaults_from_the_graph() {
    let nhwc = [Some(1), Some(224), Some(320), Some(3)];
    let out = [Some(1), Some(2), Some(224), Some(320)];
    let m = resolve(&HashMap::new(), &shapes(&nhwc, &out), &MetaOverrides::default()).unwrap();
    assert_eq!(m.layout, Layout::Nhwc);
    assert_eq!((m.width, m.height), (320, 224));
    assert_eq!(m.color, ColorMode::Rgb);
    assert_eq!(m.mean, vec![0.0; 3]);
    assert_eq!(m.classes, vec!["background", "class1"]);
    let sigmoid = resolve(&HashMap::new(), &shapes(&FIXED_GRAY, &[Some(1), Some(1), Some(256), Some(256)]), &MetaOverrides::default()).unwrap();
    assert_eq!(sigmoid.activation, Activation::Sigmoid);
    assert_eq!(sigmoid.classes.len(), 2);
}

#[test]
fn dynamic_input_needs_a_size() {
    let dynamic = [Some(1), Some(3), None, None];
    let err = resolve(&HashMap::new(), &shapes(&dynamic, &[]), &MetaOverrides::default()).unwrap_err();
    assert!(format!("{err:#}").contains("--size"), "{err:#}");
    let flags = MetaOverrides { size: Some((320, 320)), classes: Some(vec!["bg".into(), "x".into()]), ..Default::default() };
    let m = resolve(&HashMap::new(), &shapes(&dynamic, &[]), &flags).unwrap();
    assert_eq!((m.width, m.height), (320, 320));
}

#[test]
fn contradictions_are_errors_with_a_fix() {
    let p = props(&[("color", "rgb")]);
    let err = resolve(&p, &shapes(&FIXED_GRAY, &OUT5), &MetaOverrides::default()).unwrap_err();
    assert!(format!("{err:#}").contains("--color gray"), "{err:#}");
    let flags = MetaOverrides { size: Some((300, 300)), ..Default::default() };
    let err = resolve(&HashMap::new(), &shapes(&FIXED_GRAY, &OUT5), &flags).unwrap_err();
    assert!(format!("{err:#}").contains("wrong input size"), "{err:#}");
    let flags = MetaOverrides { mean: Some(vec![0.1, 0.2]), ..Default::default() };
    assert!(resolve(&HashMap::new(), &shapes(&FIXED_GRAY, &OUT5), &flags).is_err());
    let flags = MetaOverrides { std: Some(vec![0.0]), ..Default::default() };
    assert!(resolve(&HashMap::new(), &shapes(&FIXED_GRAY, &OUT5), &flags).is_err());
    let many = MetaOverrides { classes: Some((0..300).map(|i| format!("c{i}")).collect()), ..Default::default() };
    let err = resolve(&HashMap::new(), &shapes(&FIXED_GRAY, &[Some(1), Some(300), Some(256), Some(256)]), &many).unwrap_err();
    assert!(format!("{err:#}").contains("at most 256"), "{err:#}");
    let p = props(&[("task", "detection")]);
    let err = resolve(&p, &shapes(&FIXED_GRAY, &OUT5), &MetaOverrides::default()).unwrap_err();
    assert!(format!("{err:#}").contains("edgeseg.task"), "{err:#}");
}

/// Found by tests/fuzz_inputs.rs: an output declaring 2^40 channels made resolve
/// allocate 2^40 class names (an abort, not an error).
#[test]
fn absurd_shapes_are_errors_not_allocations() {
    let huge_out = shapes(&FIXED_GRAY, &[Some(1), Some(1 << 40), Some(256), Some(256)]);
    let e = resolve(&HashMap::new(), &huge_out, &MetaOverrides::default()).unwrap_err().to_string();
    assert!(e.contains("1099511627776 channels") && e.contains("fix:"), "{e}");
    let huge_in = shapes(&[Some(1), Some(1), Some(1 << 20), Some(256)], &OUT5);
    let e = resolve(&HashMap::new(), &huge_in, &MetaOverrides::default()).unwrap_err().to_string();
    assert!(e.contains("larger than") && e.contains("fix:"), "{e}");
}

#[test]
fn activation_flag_then_graph_then_metadata_then_default() {
    let one = [Some(1), Some(1), Some(256), Some(256)];
    let ends_in = |op: &str| GraphShapes { output_op: Some((op.into(), "last".into())), ..shapes(&FIXED_GRAY, &one) };
    let none = MetaOverrides::default();
    // A final Sigmoid or Softmax: the output is a probability, whatever the metadata says.
    let m = resolve(&props(&[("output_activation", "sigmoid")]), &ends_in("Sigmoid"), &none).unwrap();
    assert_eq!((m.activation, m.binary_threshold), (Activation::None, 0.5));
    assert!(m.activation_reason.contains("Sigmoid") && m.activation_reason.contains("not applied twice"), "{}", m.activation_reason);
    assert_eq!(resolve(&HashMap::new(), &ends_in("Softmax"), &none).unwrap().activation, Activation::None);
    // Other last ops leave it to the metadata, then to the channel count.
    assert_eq!(resolve(&props(&[("output_activation", "none")]), &ends_in("Conv"), &none).unwrap().activation, Activation::None);
    assert_eq!(resolve(&HashMap::new(), &ends_in("Conv"), &none).unwrap().activation, Activation::Sigmoid);
    assert_eq!(resolve(&HashMap::new(), &shapes(&FIXED_GRAY, &OUT5), &none).unwrap().activation, Activation::Softmax);
    // The flag wins over the graph.
    let flag = MetaOverrides { activation: Some(Activation::Sigmoid), binary_threshold: Some(0.8), ..Default::default() };
    let m = resolve(&HashMap::new(), &ends_in("Sigmoid"), &flag).unwrap();
    assert_eq!((m.activation, m.binary_threshold), (Activation::Sigmoid, 0.8));
    assert!(m.origins.contains(&("activation", Origin::Flag)) && m.origins.contains(&("binary_threshold", Origin::Flag)));
    // Thresholds: metadata, and bad values named.
    assert_eq!(resolve(&props(&[("binary_threshold", "0.3")]), &ends_in("Sigmoid"), &none).unwrap().binary_threshold, 0.3);
    let e = resolve(&props(&[("binary_threshold", "1.5")]), &ends_in("Sigmoid"), &none).unwrap_err();
    assert!(format!("{e:#}").contains("edgeseg.binary_threshold"), "{e:#}");
    let e = resolve(&HashMap::new(), &ends_in("Sigmoid"), &MetaOverrides { binary_threshold: Some(f32::NAN), ..Default::default() }).unwrap_err();
    assert!(e.to_string().contains("between 0 and 1"), "{e}");
    assert!(parse_threshold("0").is_err() && parse_threshold("1").is_err() && parse_threshold("x").is_err());
    assert_eq!(parse_threshold(" 0.25 ").unwrap(), 0.25);
}
