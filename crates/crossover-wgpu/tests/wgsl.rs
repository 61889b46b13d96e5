//! Every WGSL shader parses and validates with naga (the f16 ones with the `f16`
//! capability), without needing an adapter.

#[test]
fn every_shader_validates_with_naga() {
    use crossover_kernels::wgsl::{ALL, F16};
    let plain = ALL.iter().map(|s| (s, naga::valid::Capabilities::empty()));
    let f16 = F16
        .iter()
        .map(|s| (s, naga::valid::Capabilities::SHADER_FLOAT16));
    for (shader, capabilities) in plain.chain(f16) {
        let module = naga::front::wgsl::parse_str(shader.source)
            .unwrap_or_else(|e| panic!("{}: {}", shader.name, e.emit_to_string(shader.source)));
        let mut validator =
            naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities);
        validator
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}: {}", shader.name, e.emit_to_string(shader.source)));
        assert!(
            module
                .entry_points
                .iter()
                .any(|e| e.name == shader.entry_point),
            "{} has no entry point {}",
            shader.name,
            shader.entry_point
        );
    }
}

#[test]
fn adapters_list_is_ordered_and_indexed() {
    let all = crossover_wgpu::adapters(crossover_wgpu::AdapterSelection::IncludeSoftware);
    for (i, a) in all.iter().enumerate() {
        assert_eq!(a.index, i);
    }
    // Hardware first: no hardware adapter follows a software one.
    let first_soft = all.iter().position(|a| a.software).unwrap_or(all.len());
    assert!(all[first_soft..].iter().all(|a| a.software), "{all:?}");
    let auto = crossover_wgpu::adapters(crossover_wgpu::AdapterSelection::Auto);
    if all.iter().any(|a| !a.software) {
        assert!(auto.iter().all(|a| !a.software), "{auto:?}");
    } else {
        assert_eq!(auto.len(), all.len());
    }
}
