//! `updater-vendor`: the command line of [`updater_vendor`].

fn main() {
    updater_vendor::main()
}
