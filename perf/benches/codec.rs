//! Codec decode and encode, per event and per batch (json on the shipped data set).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use temblor_shim::{
    Frames, RVec, Value,
    abi_stable::std_types::{RSlice, RStr},
};

fn per_event(c: &mut Criterion) {
    let lines = temblor_perf::json_lines();
    let bytes: usize = lines.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group("json per event");
    group.throughput(Throughput::Bytes(bytes as u64));
    let mut codec = codec_json::Json::new();
    group.bench_function("decode", |b| {
        b.iter(|| {
            for line in &lines {
                std::hint::black_box(codec.decode_frame(line).unwrap());
            }
        });
    });
    let values: Vec<Value> = lines
        .iter()
        .map(|l| codec.decode_frame(l).unwrap())
        .collect();
    let mut out = Vec::new();
    group.bench_function("encode", |b| {
        b.iter(|| {
            for value in &values {
                out.clear();
                value.write_json(&mut out);
                std::hint::black_box(&out);
            }
        });
    });
    group.finish();
}

fn per_batch(c: &mut Criterion) {
    let lines = temblor_perf::json_lines();
    let mut group = c.benchmark_group("json per batch (through the ABI object)");
    let module = codec_json::plugin_module();
    let mut codec = module.new_codec()(RStr::from_str("bench"), &Value::Object(Default::default()))
        .into_result()
        .unwrap();
    for batch in [1_usize, 64, 1024] {
        let frames = temblor_perf::batch_of(&lines, batch);
        group.throughput(Throughput::Bytes(frames.byte_len() as u64));
        group.bench_with_input(BenchmarkId::new("decode", batch), &frames, |b, frames| {
            let mut events = RVec::new();
            let mut errors = RVec::new();
            b.iter(|| {
                events.clear();
                codec.decode(frames, &mut events, &mut errors).unwrap();
            });
        });
        let mut events = RVec::new();
        codec
            .decode(&frames, &mut events, &mut RVec::new())
            .unwrap();
        group.bench_with_input(BenchmarkId::new("encode", batch), &events, |b, events| {
            let mut out = Frames::new();
            b.iter(|| {
                out.clear();
                codec.encode(RSlice::from_slice(events), &mut out).unwrap();
            });
        });
    }
    group.finish();
}

criterion_group!(benches, per_event, per_batch);
criterion_main!(benches);
