//! The `tollgate` command: a thin front end over the library.

fn main() {
    println!("tollgate {}", env!("CARGO_PKG_VERSION"));
}
