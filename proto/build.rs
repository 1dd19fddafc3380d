//! Generates Rust code for the protocol files with protox, a pure-Rust protobuf compiler, so that a
//! fresh machine without a system `protoc` builds the workspace.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/api.proto", "proto/health.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
