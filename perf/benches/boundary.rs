//! One boundary crossing: a batch of N frames decoded through the json codec loaded from its
//! plugin file, against the same codec linked statically (the monolith's way). The plugin file
//! comes from `TEMBLOR_PERF_PLUGIN` or `target/plugins/libcodec_json.so`
//! (`cargo xtask build-plugins` puts it there).

use std::path::{Path, PathBuf};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use temblor_shim::{
    RVec, Value,
    abi::{CodecBox, PluginModRef},
    abi_stable::{library::lib_header_from_path, std_types::RStr},
};

fn plugin_file() -> PathBuf {
    std::env::var_os("TEMBLOR_PERF_PLUGIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins/libcodec_json.so"),
        PathBuf::from,
    )
}

fn codec(module: PluginModRef) -> CodecBox {
    module.new_codec()(RStr::from_str("bench"), &Value::Object(Default::default()))
        .into_result()
        .unwrap()
}

fn crossing(c: &mut Criterion) {
    let file = plugin_file();
    let loaded = lib_header_from_path(&file)
        .and_then(|h| h.init_root_module::<PluginModRef>())
        .unwrap_or_else(|e| {
            panic!(
                "cannot load {}: {e} (run `cargo xtask build-plugins`)",
                file.display()
            )
        });
    let lines = temblor_perf::json_lines();
    let mut group = c.benchmark_group("decode a batch: loaded plugin vs static");
    for batch in [1_usize, 16, 256] {
        let frames = temblor_perf::batch_of(&lines, batch);
        group.throughput(Throughput::Elements(batch as u64));
        for (name, module) in [("loaded", loaded), ("static", codec_json::plugin_module())] {
            let mut codec = codec(module);
            group.bench_with_input(BenchmarkId::new(name, batch), &frames, |b, frames| {
                let mut events = RVec::new();
                let mut errors = RVec::new();
                b.iter(|| {
                    events.clear();
                    codec.decode(frames, &mut events, &mut errors).unwrap();
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, crossing);
criterion_main!(benches);
