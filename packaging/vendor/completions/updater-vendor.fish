# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_updater_vendor_global_optspecs
    string join \n v/verbose h/help V/version
end

function __fish_updater_vendor_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_updater_vendor_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_updater_vendor_using_subcommand
    set -l cmd (__fish_updater_vendor_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c updater-vendor -n "__fish_updater_vendor_needs_command" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c updater-vendor -n "__fish_updater_vendor_needs_command" -s h -l help -d 'Print help'
complete -c updater-vendor -n "__fish_updater_vendor_needs_command" -s V -l version -d 'Print version'
complete -c updater-vendor -n "__fish_updater_vendor_needs_command" -f -a "keygen" -d 'Make an ed25519 key pair (PKCS#8 private, SPKI public, as OpenSSL writes them)'
complete -c updater-vendor -n "__fish_updater_vendor_needs_command" -f -a "release" -d 'Make and sign releases'
complete -c updater-vendor -n "__fish_updater_vendor_needs_command" -f -a "keyring" -d 'Make the keyring a device trusts'
complete -c updater-vendor -n "__fish_updater_vendor_needs_command" -f -a "channel" -d 'Publish signed channel documents'
complete -c updater-vendor -n "__fish_updater_vendor_needs_command" -f -a "root" -d 'Make and co-sign root versions: who devices trust, over the years'
complete -c updater-vendor -n "__fish_updater_vendor_needs_command" -f -a "verify" -d 'Verify a release manifest against a keyring'
complete -c updater-vendor -n "__fish_updater_vendor_needs_command" -f -a "serve" -d 'Serve a release folder over loopback HTTP (demos, tests, benchmarks)'
complete -c updater-vendor -n "__fish_updater_vendor_needs_command" -f -a "schema" -d 'Write the release format\'s JSON Schemas (generated from the Rust types)'
complete -c updater-vendor -n "__fish_updater_vendor_needs_command" -f -a "demo" -d 'Run the built-in demonstration: a vendor makes and signs releases, a simulated device in a temporary folder installs, tries, commits and rolls back'
complete -c updater-vendor -n "__fish_updater_vendor_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand keygen" -l out -d 'Folder for the key files (created if missing)' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand keygen" -l name -d 'Base name: writes NAME.key (mode 0600) and NAME.pub' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand keygen" -l json -d 'Print the result as JSON'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand keygen" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand keygen" -s h -l help -d 'Print help'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and not __fish_seen_subcommand_from create sign help" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and not __fish_seen_subcommand_from create sign help" -s h -l help -d 'Print help'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and not __fish_seen_subcommand_from create sign help" -f -a "create" -d 'Make a signed release folder, ready to be served by any static HTTP server'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and not __fish_seen_subcommand_from create sign help" -f -a "sign" -d 'Add a signature to a release manifest (to meet a threshold)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and not __fish_seen_subcommand_from create sign help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l out -d 'Output folder (created; must be empty)' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l key -d 'Manifest-role private key (repeat to sign with several)' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l signer -d 'A manifest-role external signer, PUBLIC-KEY-FILE=COMMAND: the command gets the bytes to sign on stdin and writes the raw ed25519 signature on stdout (an HSM, a KMS; repeat for several)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l product -d 'Product name' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l version -d 'Release version (semver)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l security-version -d 'Security version (monotonic; devices refuse lower ones)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l compatible -d 'Device compatible string (repeat for several)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l image -d 'An image: CLASS=PATH (e.g. rootfs=rootfs.ext4); repeat for several' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l kernel -d 'The kernel image (bzImage), class `kernel`; needs --kernel-key' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l kernel-key -d 'Kernel-role private key (repeat for several)' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l kernel-signer -d 'A kernel-role external signer, PUBLIC-KEY-FILE=COMMAND (as --signer)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l initrd -d 'The initrd, class `initrd`' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l uki -d 'A Unified Kernel Image, class `uki`, instead of --kernel and --initrd: its .linux section is signed with --kernel-key, its .initrd section pinned, its .cmdline section is the release\'s command line. Needs --kernel-key' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l ostree-repo -d 'An OSTree release, for devices whose slots are OSTree deployments: the vendor build\'s repository, whose commit of --ref devices deploy, instead of images. Read with the `ostree` command; the commit is exported into OUT/repo by an untrusted pull (every object checked) unless --ostree-url names where it is served. Needs --kernel-key: the tree\'s kernel is signed like any release\'s' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l ref -d 'The ref to release, with --ostree-repo (`os/x86_64/stable`)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l osname -d 'The OS name (ostree\'s stateroot) on the devices [default: the product]' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l ostree-url -d 'Where devices fetch the commit\'s objects, relative to the manifest (a repository shared by releases, `../repo`) [default: the commit is exported into OUT/repo]' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l ostree-kernel -d 'The kernel\'s path in the tree [default: /usr/lib/modules/KVER/vmlinuz]' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l ostree-initrd -d 'The initrd\'s path in the tree [default: initramfs.img beside the kernel, when there is one]' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l static-delta-from -d 'The commit (or ref) devices run now, that the static delta applies to' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l cmdline -d 'Kernel command line (the agent appends root and updater.slot=)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l expires -d 'Expiry: an RFC 3339 time or a number of days after creation [default: 90]' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l created -d 'Creation time, RFC 3339 (default now; set it for reproducible builds). A relative --expires counts from it' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l now -d 'The time the release is checked against (default now): with --created in the past, for a build or test on a fixed clock' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l max-validity-days -d 'The longest validity (days from creation to expiry) the devices accept: their install.max_release_validity_days. A release valid for longer is refused' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l min-agent-version -d 'Oldest agent version allowed to install the release (default this one)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l chunk-size -d 'Chunk size in bytes: with schema 2 the average of the content-defined chunks, a power of two from 1024 to 1048576 [default: from the image size, 8 KiB to 64 KiB]; with schema 1 the fixed size [default: 4 MiB]' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l schema -d 'Manifest schema: 2 (content-defined chunks with a paged index, which devices update by difference) or 1 (fixed chunks, for agents older than 0.2)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l zstd-level -d 'zstd compression level (1-19)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l static-delta -d 'Also make a static delta of the commit beside the manifest (`ostree.delta`, pinned): from nothing, or from --static-delta-from'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -l force -d 'Make the release even when devices would refuse it (already expired, or valid for longer than --max-validity-days), with a warning: test vectors'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from sign" -l key -d 'Manifest-role private key' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from sign" -l signer -d 'A manifest-role external signer, PUBLIC-KEY-FILE=COMMAND (as in `release create --signer`)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from sign" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from sign" -s h -l help -d 'Print help'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from help" -f -a "create" -d 'Make a signed release folder, ready to be served by any static HTTP server'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from help" -f -a "sign" -d 'Add a signature to a release manifest (to meet a threshold)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand release; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand keyring; and not __fish_seen_subcommand_from init help" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand keyring; and not __fish_seen_subcommand_from init help" -s h -l help -d 'Print help'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand keyring; and not __fish_seen_subcommand_from init help" -f -a "init" -d 'Create a keyring folder from public keys (format in keys/README.md)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand keyring; and not __fish_seen_subcommand_from init help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand keyring; and __fish_seen_subcommand_from init" -l manifest-key -d 'A public key trusted to sign manifests (repeat for several)' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand keyring; and __fish_seen_subcommand_from init" -l manifest-threshold -d 'Distinct manifest keys that must sign' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand keyring; and __fish_seen_subcommand_from init" -l kernel-key -d 'A public key trusted to sign kernels (repeat for several)' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand keyring; and __fish_seen_subcommand_from init" -l kernel-threshold -d 'Distinct kernel keys that must sign' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand keyring; and __fish_seen_subcommand_from init" -l channel-key -d 'A public key trusted to sign channel documents (repeat for several; needed by `updater daemon` and `updater check`)' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand keyring; and __fish_seen_subcommand_from init" -l channel-threshold -d 'Distinct channel keys that must sign' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand keyring; and __fish_seen_subcommand_from init" -l root-key -d 'A root key (repeat for several; kept offline): the keyring becomes root version 1 and devices follow the root versions published beside releases and channels' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand keyring; and __fish_seen_subcommand_from init" -l root-threshold -d 'Distinct root keys that must sign the next root version' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand keyring; and __fish_seen_subcommand_from init" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand keyring; and __fish_seen_subcommand_from init" -s h -l help -d 'Print help'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand keyring; and __fish_seen_subcommand_from help" -f -a "init" -d 'Create a keyring folder from public keys (format in keys/README.md)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand keyring; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand channel; and not __fish_seen_subcommand_from publish help" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand channel; and not __fish_seen_subcommand_from publish help" -s h -l help -d 'Print help'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand channel; and not __fish_seen_subcommand_from publish help" -f -a "publish" -d 'Write a signed channel document naming the current release per compatible string and its rollout percentage'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand channel; and not __fish_seen_subcommand_from publish help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand channel; and __fish_seen_subcommand_from publish" -l out -d 'The channel file to write (relative manifest paths are read from its folder, as devices resolve them against the channel\'s URL)' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand channel; and __fish_seen_subcommand_from publish" -l key -d 'A channel-role private key (repeat to meet a threshold)' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand channel; and __fish_seen_subcommand_from publish" -l signer -d 'A channel-role external signer, PUBLIC-KEY-FILE=COMMAND (as in `release create --signer`; repeat for several)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand channel; and __fish_seen_subcommand_from publish" -l release -d 'COMPATIBLE=MANIFEST_URL or COMPATIBLE=MANIFEST_URL@PERCENT: the release devices of COMPATIBLE should run, and the share of them that should run it yet (default 100)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand channel; and __fish_seen_subcommand_from publish" -l not-before -d 'COMPATIBLE=TIME (RFC 3339): devices may download before TIME but boot the release only after it' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand channel; and __fish_seen_subcommand_from publish" -l name -d 'Channel name (default: the name of the --out file without extension)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand channel; and __fish_seen_subcommand_from publish" -l expires -d 'Expiry: a duration from the issue time (`90m`, `36h`, `7d`) or an RFC 3339 time. Re-publish well before it; devices refuse an expired channel' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand channel; and __fish_seen_subcommand_from publish" -l issued -d 'Issue time, RFC 3339 (default now). Devices refuse a channel issued before the newest one they followed; set it for reproducible output' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand channel; and __fish_seen_subcommand_from publish" -l json -d 'Print the channel as JSON'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand channel; and __fish_seen_subcommand_from publish" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand channel; and __fish_seen_subcommand_from publish" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand channel; and __fish_seen_subcommand_from help" -f -a "publish" -d 'Write a signed channel document naming the current release per compatible string and its rollout percentage'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand channel; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and not __fish_seen_subcommand_from init rotate sign verify help" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and not __fish_seen_subcommand_from init rotate sign verify help" -s h -l help -d 'Print help'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and not __fish_seen_subcommand_from init rotate sign verify help" -f -a "init" -d 'Write root version 1 from a keyring folder with a root role'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and not __fish_seen_subcommand_from init rotate sign verify help" -f -a "rotate" -d 'Write root version N+1 from version N, with the changes asked for'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and not __fish_seen_subcommand_from init rotate sign verify help" -f -a "sign" -d 'Add a signature to a root document (co-signing, one key at a time)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and not __fish_seen_subcommand_from init rotate sign verify help" -f -a "verify" -d 'Check a root version against the one devices trust now, as they will'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and not __fish_seen_subcommand_from init rotate sign verify help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from init" -l keyring -d 'The keyring folder (made by `keyring init` with --root-key)' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from init" -l out -d 'The root document to write (publish it as 1.root.json, or put it in the device\'s keyring folder as root.json)' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from init" -l expires -d 'When this root expires (RFC 3339)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from init" -l key -d 'A root private key to sign with (repeat for several)' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from init" -l signer -d 'An external signer, PUBLIC-KEY-FILE=COMMAND: the command gets the bytes to sign on stdin and writes the raw ed25519 signature on stdout (an HSM; repeat for several)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from init" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from init" -s h -l help -d 'Print help'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from rotate" -l from -d 'The root version devices trust now' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from rotate" -l out -d 'The new version to write (publish it as N+1.root.json once signed)' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from rotate" -l expires -d 'When the new root expires (RFC 3339)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from rotate" -l root-key -d 'Replace the root keys by these public keys (repeat)' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from rotate" -l root-threshold -d 'The root threshold (default: unchanged)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from rotate" -l manifest-key -d 'Replace the manifest keys by these public keys (repeat)' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from rotate" -l manifest-threshold -d 'The manifest threshold (default: unchanged)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from rotate" -l kernel-key -d 'Replace the kernel keys by these public keys (repeat)' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from rotate" -l kernel-threshold -d 'The kernel threshold (default: unchanged)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from rotate" -l channel-key -d 'Replace the channel keys by these public keys (repeat)' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from rotate" -l channel-threshold -d 'The channel threshold (default: unchanged)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from rotate" -l reset-security-version -d 'Reset the security_version floor of every device to this (recovery from a leaked manifest key; needs --reset-version)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from rotate" -l reset-version -d 'With the reset: releases from this version on are not downgrades while the release a device runs at the reset still runs' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from rotate" -l max-security-step -d 'The most one release may raise security_version while this root is trusted (replaces the devices\' install.max_security_step)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from rotate" -l key -d 'A root private key to sign with (repeat for several)' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from rotate" -l signer -d 'An external signer, PUBLIC-KEY-FILE=COMMAND: the command gets the bytes to sign on stdin and writes the raw ed25519 signature on stdout (an HSM; repeat for several)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from rotate" -l reset-channels -d 'With the reset: forget every channel replay floor'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from rotate" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from rotate" -s h -l help -d 'Print help'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from sign" -l key -d 'A root private key to sign with (repeat for several)' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from sign" -l signer -d 'An external signer, PUBLIC-KEY-FILE=COMMAND: the command gets the bytes to sign on stdin and writes the raw ed25519 signature on stdout (an HSM; repeat for several)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from sign" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from sign" -s h -l help -d 'Print help'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from verify" -l trusted -d 'The root version devices trust now' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from verify" -l now -d 'The time to check the new root\'s expiry at (RFC 3339; default now)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from verify" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from help" -f -a "init" -d 'Write root version 1 from a keyring folder with a root role'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from help" -f -a "rotate" -d 'Write root version N+1 from version N, with the changes asked for'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from help" -f -a "sign" -d 'Add a signature to a root document (co-signing, one key at a time)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Check a root version against the one devices trust now, as they will'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand root; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand verify" -l keyring -d 'The keyring folder to trust' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand verify" -l compatible -d 'The device\'s compatible string (checked when given)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand verify" -l now -d 'Check expiry as of this time (RFC 3339) instead of the clock' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand verify" -l max-validity-days -d 'The longest validity (days from creation to expiry) the devices accept: their install.max_release_validity_days' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand verify" -l json -d 'Print the result as JSON'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand verify" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand verify" -s h -l help -d 'Print help'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand serve" -l listen -d 'Loopback address and port to listen on' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand serve" -l seconds -d 'Stop after this many seconds (default: run until killed)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand serve" -l rate -d 'Limit the body throughput to this many bytes per second (tests)' -r
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand serve" -l log -d 'Append a line per request to this file: path, status, range start (`-` for the whole file) and the body bytes sent' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand serve" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand serve" -s h -l help -d 'Print help'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand schema" -l out -d 'Folder to write the schemas into (default: print the manifest schema)' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand schema" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand schema" -s h -l help -d 'Print help'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand demo" -l dir -d 'Work in this folder instead of a new temporary one (kept afterwards)' -r -F
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand demo" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand demo" -s h -l help -d 'Print help'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring channel root verify serve schema demo help" -f -a "keygen" -d 'Make an ed25519 key pair (PKCS#8 private, SPKI public, as OpenSSL writes them)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring channel root verify serve schema demo help" -f -a "release" -d 'Make and sign releases'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring channel root verify serve schema demo help" -f -a "keyring" -d 'Make the keyring a device trusts'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring channel root verify serve schema demo help" -f -a "channel" -d 'Publish signed channel documents'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring channel root verify serve schema demo help" -f -a "root" -d 'Make and co-sign root versions: who devices trust, over the years'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring channel root verify serve schema demo help" -f -a "verify" -d 'Verify a release manifest against a keyring'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring channel root verify serve schema demo help" -f -a "serve" -d 'Serve a release folder over loopback HTTP (demos, tests, benchmarks)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring channel root verify serve schema demo help" -f -a "schema" -d 'Write the release format\'s JSON Schemas (generated from the Rust types)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring channel root verify serve schema demo help" -f -a "demo" -d 'Run the built-in demonstration: a vendor makes and signs releases, a simulated device in a temporary folder installs, tries, commits and rolls back'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand help; and not __fish_seen_subcommand_from keygen release keyring channel root verify serve schema demo help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand help; and __fish_seen_subcommand_from release" -f -a "create" -d 'Make a signed release folder, ready to be served by any static HTTP server'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand help; and __fish_seen_subcommand_from release" -f -a "sign" -d 'Add a signature to a release manifest (to meet a threshold)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand help; and __fish_seen_subcommand_from keyring" -f -a "init" -d 'Create a keyring folder from public keys (format in keys/README.md)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand help; and __fish_seen_subcommand_from channel" -f -a "publish" -d 'Write a signed channel document naming the current release per compatible string and its rollout percentage'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand help; and __fish_seen_subcommand_from root" -f -a "init" -d 'Write root version 1 from a keyring folder with a root role'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand help; and __fish_seen_subcommand_from root" -f -a "rotate" -d 'Write root version N+1 from version N, with the changes asked for'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand help; and __fish_seen_subcommand_from root" -f -a "sign" -d 'Add a signature to a root document (co-signing, one key at a time)'
complete -c updater-vendor -n "__fish_updater_vendor_using_subcommand help; and __fish_seen_subcommand_from root" -f -a "verify" -d 'Check a root version against the one devices trust now, as they will'
