# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_updater_global_optspecs
    string join \n v/verbose config= h/help V/version
end

function __fish_updater_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_updater_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_updater_using_subcommand
    set -l cmd (__fish_updater_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c updater -n "__fish_updater_needs_command" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_needs_command" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_needs_command" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_needs_command" -s V -l version -d 'Print version'
complete -c updater -n "__fish_updater_needs_command" -f -a "keygen" -d 'Make an ed25519 key pair (PKCS#8 private, SPKI public, as OpenSSL writes them)'
complete -c updater -n "__fish_updater_needs_command" -f -a "release" -d 'Make and sign releases (vendor side)'
complete -c updater -n "__fish_updater_needs_command" -f -a "keyring" -d 'Manage the keyring a device trusts'
complete -c updater -n "__fish_updater_needs_command" -f -a "verify" -d 'Verify a release manifest against a keyring and the device\'s policy'
complete -c updater -n "__fish_updater_needs_command" -f -a "apply" -d 'Install a release into the inactive slot group'
complete -c updater -n "__fish_updater_needs_command" -f -a "activate" -d 'Boot the release installed in the inactive slot as a trial (after a download-only install)'
complete -c updater -n "__fish_updater_needs_command" -f -a "check" -d 'Poll the configured channel once and say what the daemon would do'
complete -c updater -n "__fish_updater_needs_command" -f -a "daemon" -d 'Follow the configured channel: poll, install, boot in the allowed time, report (systemd Type=notify service)'
complete -c updater -n "__fish_updater_needs_command" -f -a "channel" -d 'Publish signed channel documents (vendor side)'
complete -c updater -n "__fish_updater_needs_command" -f -a "status" -d 'Show the slot groups, what they hold, and any failure or pending trial'
complete -c updater -n "__fish_updater_needs_command" -f -a "health" -d 'Reconcile a pending trial at boot: run the health checks and commit, or mark the slot bad'
complete -c updater -n "__fish_updater_needs_command" -f -a "mark-good" -d 'Confirm the booted slot as good and make it the default'
complete -c updater -n "__fish_updater_needs_command" -f -a "mark-bad" -d 'Mark a slot bad (default: the booted one) so it is never booted again'
complete -c updater -n "__fish_updater_needs_command" -f -a "rollback" -d 'Make the other good slot the default again'
complete -c updater -n "__fish_updater_needs_command" -f -a "serve" -d 'Serve a release folder over loopback HTTP (for demos and tests)'
complete -c updater -n "__fish_updater_needs_command" -f -a "demo" -d 'Run the built-in demonstration on a simulated device in a temporary folder'
complete -c updater -n "__fish_updater_needs_command" -f -a "schema" -d 'Write the release format\'s JSON Schemas (generated from the Rust types)'
complete -c updater -n "__fish_updater_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c updater -n "__fish_updater_using_subcommand keygen" -l out -d 'Folder for the key files (created if missing)' -r -F
complete -c updater -n "__fish_updater_using_subcommand keygen" -l name -d 'Base name: writes NAME.key (mode 0600) and NAME.pub' -r
complete -c updater -n "__fish_updater_using_subcommand keygen" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand keygen" -l json -d 'Print the result as JSON'
complete -c updater -n "__fish_updater_using_subcommand keygen" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand keygen" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand release; and not __fish_seen_subcommand_from create sign help" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand release; and not __fish_seen_subcommand_from create sign help" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand release; and not __fish_seen_subcommand_from create sign help" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand release; and not __fish_seen_subcommand_from create sign help" -f -a "create" -d 'Make a signed release folder, ready to be served by any static HTTP server'
complete -c updater -n "__fish_updater_using_subcommand release; and not __fish_seen_subcommand_from create sign help" -f -a "sign" -d 'Add a signature to a release manifest (to meet a threshold)'
complete -c updater -n "__fish_updater_using_subcommand release; and not __fish_seen_subcommand_from create sign help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from create" -l out -d 'Output folder (created; must be empty)' -r -F
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from create" -l key -d 'Manifest-role private key (repeat to sign with several)' -r -F
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from create" -l product -d 'Product name' -r
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from create" -l version -d 'Release version (semver)' -r
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from create" -l security-version -d 'Security version (monotonic; devices refuse lower ones)' -r
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from create" -l compatible -d 'Device compatible string (repeat for several)' -r
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from create" -l image -d 'An image: CLASS=PATH (e.g. rootfs=rootfs.ext4); repeat for several' -r
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from create" -l kernel -d 'The kernel image (bzImage), class `kernel`; needs --kernel-key' -r -F
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from create" -l kernel-key -d 'Kernel-role private key (repeat for several)' -r -F
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from create" -l initrd -d 'The initrd, class `initrd`' -r -F
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from create" -l cmdline -d 'Kernel command line (the agent appends root and updater.slot=)' -r
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from create" -l expires -d 'Expiry: an RFC 3339 time or a number of days after creation [default: 90]' -r
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from create" -l created -d 'Creation time, RFC 3339 (default now; set it for reproducible builds)' -r
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from create" -l min-agent-version -d 'Oldest agent version allowed to install the release (default this one)' -r
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from create" -l chunk-size -d 'Uncompressed chunk size in bytes' -r
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from create" -l zstd-level -d 'zstd compression level (1-19)' -r
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from create" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from create" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from sign" -l key -d 'Manifest-role private key' -r -F
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from sign" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from sign" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from sign" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from help" -f -a "create" -d 'Make a signed release folder, ready to be served by any static HTTP server'
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from help" -f -a "sign" -d 'Add a signature to a release manifest (to meet a threshold)'
complete -c updater -n "__fish_updater_using_subcommand release; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c updater -n "__fish_updater_using_subcommand keyring; and not __fish_seen_subcommand_from init help" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand keyring; and not __fish_seen_subcommand_from init help" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand keyring; and not __fish_seen_subcommand_from init help" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand keyring; and not __fish_seen_subcommand_from init help" -f -a "init" -d 'Create a keyring folder from public keys (format in keys/README.md)'
complete -c updater -n "__fish_updater_using_subcommand keyring; and not __fish_seen_subcommand_from init help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c updater -n "__fish_updater_using_subcommand keyring; and __fish_seen_subcommand_from init" -l manifest-key -d 'A public key trusted to sign manifests (repeat for several)' -r -F
complete -c updater -n "__fish_updater_using_subcommand keyring; and __fish_seen_subcommand_from init" -l manifest-threshold -d 'Distinct manifest keys that must sign' -r
complete -c updater -n "__fish_updater_using_subcommand keyring; and __fish_seen_subcommand_from init" -l kernel-key -d 'A public key trusted to sign kernels (repeat for several)' -r -F
complete -c updater -n "__fish_updater_using_subcommand keyring; and __fish_seen_subcommand_from init" -l kernel-threshold -d 'Distinct kernel keys that must sign' -r
complete -c updater -n "__fish_updater_using_subcommand keyring; and __fish_seen_subcommand_from init" -l channel-key -d 'A public key trusted to sign channel documents (repeat for several; needed by `updater daemon` and `updater check`)' -r -F
complete -c updater -n "__fish_updater_using_subcommand keyring; and __fish_seen_subcommand_from init" -l channel-threshold -d 'Distinct channel keys that must sign' -r
complete -c updater -n "__fish_updater_using_subcommand keyring; and __fish_seen_subcommand_from init" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand keyring; and __fish_seen_subcommand_from init" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand keyring; and __fish_seen_subcommand_from init" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand keyring; and __fish_seen_subcommand_from help" -f -a "init" -d 'Create a keyring folder from public keys (format in keys/README.md)'
complete -c updater -n "__fish_updater_using_subcommand keyring; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c updater -n "__fish_updater_using_subcommand verify" -l keyring -d 'The keyring folder to trust' -r -F
complete -c updater -n "__fish_updater_using_subcommand verify" -l compatible -d 'The device\'s compatible string (checked when given)' -r
complete -c updater -n "__fish_updater_using_subcommand verify" -l installed-version -d 'The installed version: a lower release version is refused' -r
complete -c updater -n "__fish_updater_using_subcommand verify" -l installed-security-version -d 'The highest security_version seen: a lower one is refused' -r
complete -c updater -n "__fish_updater_using_subcommand verify" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand verify" -l json -d 'Print the result as JSON'
complete -c updater -n "__fish_updater_using_subcommand verify" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand verify" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand apply" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand apply" -l no-reboot -d 'Install only; do not start a trial (the default)'
complete -c updater -n "__fish_updater_using_subcommand apply" -l reboot -d 'After installing, arm the bootloader\'s one-shot trial of the new slot and reboot into it'
complete -c updater -n "__fish_updater_using_subcommand apply" -l kexec -d 'After installing, verify the new slot\'s kernel and kexec into it as a trial (kexec.policy decides what happens when the kernel refuses)'
complete -c updater -n "__fish_updater_using_subcommand apply" -l dry-run -d 'With --kexec: verify and load the kernel, then unload it; report what would run, change nothing'
complete -c updater -n "__fish_updater_using_subcommand apply" -l json -d 'Emit JSON-lines progress events on stdout instead of a progress bar'
complete -c updater -n "__fish_updater_using_subcommand apply" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand apply" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand activate" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand activate" -l reboot -d 'Boot it by a one-shot reboot trial (default: as kexec.policy says)'
complete -c updater -n "__fish_updater_using_subcommand activate" -l kexec -d 'Boot it by a kexec trial'
complete -c updater -n "__fish_updater_using_subcommand activate" -l dry-run -d 'With --kexec: verify and load the kernel, then unload it'
complete -c updater -n "__fish_updater_using_subcommand activate" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand activate" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand check" -l now -d 'Decide as if it were this time (RFC 3339), e.g. inside the window' -r
complete -c updater -n "__fish_updater_using_subcommand check" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand check" -l json -d 'Print JSON'
complete -c updater -n "__fish_updater_using_subcommand check" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand check" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand daemon" -l now -d 'Run with the clock fixed at this time (RFC 3339); for tests' -r
complete -c updater -n "__fish_updater_using_subcommand daemon" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand daemon" -l once -d 'Poll once, act, and exit with that poll\'s result'
complete -c updater -n "__fish_updater_using_subcommand daemon" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand daemon" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand channel; and not __fish_seen_subcommand_from publish help" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand channel; and not __fish_seen_subcommand_from publish help" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand channel; and not __fish_seen_subcommand_from publish help" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand channel; and not __fish_seen_subcommand_from publish help" -f -a "publish" -d 'Write a signed channel document naming the current release per compatible string and its rollout percentage'
complete -c updater -n "__fish_updater_using_subcommand channel; and not __fish_seen_subcommand_from publish help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c updater -n "__fish_updater_using_subcommand channel; and __fish_seen_subcommand_from publish" -l out -d 'The channel file to write (relative manifest paths are read from its folder, as devices resolve them against the channel\'s URL)' -r -F
complete -c updater -n "__fish_updater_using_subcommand channel; and __fish_seen_subcommand_from publish" -l key -d 'A channel-role private key (repeat to meet a threshold)' -r -F
complete -c updater -n "__fish_updater_using_subcommand channel; and __fish_seen_subcommand_from publish" -l release -d 'COMPATIBLE=MANIFEST_URL[@PERCENT]: the release devices of COMPATIBLE should run, and the share of them that should run it yet (default 100)' -r
complete -c updater -n "__fish_updater_using_subcommand channel; and __fish_seen_subcommand_from publish" -l not-before -d 'COMPATIBLE=TIME (RFC 3339): devices may download before TIME but boot the release only after it' -r
complete -c updater -n "__fish_updater_using_subcommand channel; and __fish_seen_subcommand_from publish" -l name -d 'Channel name (default: the name of the --out file without extension)' -r
complete -c updater -n "__fish_updater_using_subcommand channel; and __fish_seen_subcommand_from publish" -l expires -d 'Expiry: a duration from now (`90m`, `36h`, `7d`) or an RFC 3339 time. Re-publish well before it; devices refuse an expired channel' -r
complete -c updater -n "__fish_updater_using_subcommand channel; and __fish_seen_subcommand_from publish" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand channel; and __fish_seen_subcommand_from publish" -l json -d 'Print the channel as JSON'
complete -c updater -n "__fish_updater_using_subcommand channel; and __fish_seen_subcommand_from publish" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand channel; and __fish_seen_subcommand_from publish" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand channel; and __fish_seen_subcommand_from help" -f -a "publish" -d 'Write a signed channel document naming the current release per compatible string and its rollout percentage'
complete -c updater -n "__fish_updater_using_subcommand channel; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c updater -n "__fish_updater_using_subcommand status" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand status" -l json -d 'Print JSON'
complete -c updater -n "__fish_updater_using_subcommand status" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand status" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand health" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand health" -l json -d 'Print the outcome as JSON'
complete -c updater -n "__fish_updater_using_subcommand health" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand health" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand mark-good" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand mark-good" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand mark-good" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand mark-bad" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand mark-bad" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand mark-bad" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand rollback" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand rollback" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand rollback" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand serve" -l listen -d 'Loopback address and port to listen on' -r
complete -c updater -n "__fish_updater_using_subcommand serve" -l seconds -d 'Stop after this many seconds (default: run until killed)' -r
complete -c updater -n "__fish_updater_using_subcommand serve" -l rate -d 'Limit the body throughput to this many bytes per second (tests)' -r
complete -c updater -n "__fish_updater_using_subcommand serve" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand serve" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand serve" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand demo" -l dir -d 'Work in this folder instead of a new temporary one (kept afterwards)' -r -F
complete -c updater -n "__fish_updater_using_subcommand demo" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand demo" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand demo" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand schema" -l out -d 'Folder to write the schemas into (default: print the manifest schema)' -r -F
complete -c updater -n "__fish_updater_using_subcommand schema" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand schema" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand schema" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring verify apply activate check daemon channel status health mark-good mark-bad rollback serve demo schema help" -f -a "keygen" -d 'Make an ed25519 key pair (PKCS#8 private, SPKI public, as OpenSSL writes them)'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring verify apply activate check daemon channel status health mark-good mark-bad rollback serve demo schema help" -f -a "release" -d 'Make and sign releases (vendor side)'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring verify apply activate check daemon channel status health mark-good mark-bad rollback serve demo schema help" -f -a "keyring" -d 'Manage the keyring a device trusts'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring verify apply activate check daemon channel status health mark-good mark-bad rollback serve demo schema help" -f -a "verify" -d 'Verify a release manifest against a keyring and the device\'s policy'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring verify apply activate check daemon channel status health mark-good mark-bad rollback serve demo schema help" -f -a "apply" -d 'Install a release into the inactive slot group'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring verify apply activate check daemon channel status health mark-good mark-bad rollback serve demo schema help" -f -a "activate" -d 'Boot the release installed in the inactive slot as a trial (after a download-only install)'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring verify apply activate check daemon channel status health mark-good mark-bad rollback serve demo schema help" -f -a "check" -d 'Poll the configured channel once and say what the daemon would do'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring verify apply activate check daemon channel status health mark-good mark-bad rollback serve demo schema help" -f -a "daemon" -d 'Follow the configured channel: poll, install, boot in the allowed time, report (systemd Type=notify service)'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring verify apply activate check daemon channel status health mark-good mark-bad rollback serve demo schema help" -f -a "channel" -d 'Publish signed channel documents (vendor side)'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring verify apply activate check daemon channel status health mark-good mark-bad rollback serve demo schema help" -f -a "status" -d 'Show the slot groups, what they hold, and any failure or pending trial'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring verify apply activate check daemon channel status health mark-good mark-bad rollback serve demo schema help" -f -a "health" -d 'Reconcile a pending trial at boot: run the health checks and commit, or mark the slot bad'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring verify apply activate check daemon channel status health mark-good mark-bad rollback serve demo schema help" -f -a "mark-good" -d 'Confirm the booted slot as good and make it the default'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring verify apply activate check daemon channel status health mark-good mark-bad rollback serve demo schema help" -f -a "mark-bad" -d 'Mark a slot bad (default: the booted one) so it is never booted again'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring verify apply activate check daemon channel status health mark-good mark-bad rollback serve demo schema help" -f -a "rollback" -d 'Make the other good slot the default again'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring verify apply activate check daemon channel status health mark-good mark-bad rollback serve demo schema help" -f -a "serve" -d 'Serve a release folder over loopback HTTP (for demos and tests)'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring verify apply activate check daemon channel status health mark-good mark-bad rollback serve demo schema help" -f -a "demo" -d 'Run the built-in demonstration on a simulated device in a temporary folder'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring verify apply activate check daemon channel status health mark-good mark-bad rollback serve demo schema help" -f -a "schema" -d 'Write the release format\'s JSON Schemas (generated from the Rust types)'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring verify apply activate check daemon channel status health mark-good mark-bad rollback serve demo schema help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c updater -n "__fish_updater_using_subcommand help; and __fish_seen_subcommand_from release" -f -a "create" -d 'Make a signed release folder, ready to be served by any static HTTP server'
complete -c updater -n "__fish_updater_using_subcommand help; and __fish_seen_subcommand_from release" -f -a "sign" -d 'Add a signature to a release manifest (to meet a threshold)'
complete -c updater -n "__fish_updater_using_subcommand help; and __fish_seen_subcommand_from keyring" -f -a "init" -d 'Create a keyring folder from public keys (format in keys/README.md)'
complete -c updater -n "__fish_updater_using_subcommand help; and __fish_seen_subcommand_from channel" -f -a "publish" -d 'Write a signed channel document naming the current release per compatible string and its rollout percentage'
