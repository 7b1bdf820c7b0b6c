# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_updater_global_optspecs
    string join \n v/verbose config= now= h/help V/version
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
complete -c updater -n "__fish_updater_needs_command" -l now -d 'Run with the clock fixed at this time (RFC 3339): what expiry, trial deadlines, windows and records see. For tests, and to ask what would happen then (`updater check --now ...`)' -r
complete -c updater -n "__fish_updater_needs_command" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_needs_command" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_needs_command" -s V -l version -d 'Print version'
complete -c updater -n "__fish_updater_needs_command" -f -a "verify" -d 'Decide about a release as `apply` would, installing nothing (or check it against a keyring alone)'
complete -c updater -n "__fish_updater_needs_command" -f -a "apply" -d 'Install a release into the inactive slot group'
complete -c updater -n "__fish_updater_needs_command" -f -a "activate" -d 'Boot the release installed in the inactive slot as a trial (after a download-only install)'
complete -c updater -n "__fish_updater_needs_command" -f -a "check" -d 'Poll the configured channel (or CHANNEL_URL) once and say what the daemon would do'
complete -c updater -n "__fish_updater_needs_command" -f -a "daemon" -d 'Follow the configured channel: poll, install, boot in the allowed time, report (systemd Type=notify service)'
complete -c updater -n "__fish_updater_needs_command" -f -a "status" -d 'Show the slot groups, what they hold, and any failure or pending trial'
complete -c updater -n "__fish_updater_needs_command" -f -a "health" -d 'Reconcile a pending trial at boot: run the health checks and commit, or mark the slot bad'
complete -c updater -n "__fish_updater_needs_command" -f -a "mark-good" -d 'Confirm the booted slot as good and make it the default'
complete -c updater -n "__fish_updater_needs_command" -f -a "mark-bad" -d 'Mark a slot bad (default: the booted one) so it is never booted again'
complete -c updater -n "__fish_updater_needs_command" -f -a "rollback" -d 'Make the other good slot the default again'
complete -c updater -n "__fish_updater_needs_command" -f -a "root" -d 'The root of trust: fetch the root chain again and verify it from the image\'s root'
complete -c updater -n "__fish_updater_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c updater -n "__fish_updater_using_subcommand verify" -l keyring -d 'Verify against this keyring alone instead of the device\'s configuration (its keyring, trusted root and compatible string)' -r -F
complete -c updater -n "__fish_updater_using_subcommand verify" -l compatible -d 'With --keyring: the compatible string to check' -r
complete -c updater -n "__fish_updater_using_subcommand verify" -l installed-version -d 'With --keyring: a lower release version is refused' -r
complete -c updater -n "__fish_updater_using_subcommand verify" -l installed-security-version -d 'With --keyring: a lower security_version is refused' -r
complete -c updater -n "__fish_updater_using_subcommand verify" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand verify" -l now -d 'Run with the clock fixed at this time (RFC 3339): what expiry, trial deadlines, windows and records see. For tests, and to ask what would happen then (`updater check --now ...`)' -r
complete -c updater -n "__fish_updater_using_subcommand verify" -l json -d 'Print the result as JSON'
complete -c updater -n "__fish_updater_using_subcommand verify" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand verify" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand apply" -l max-download -d 'Refuse the install when it would download more than this (bytes, or with a suffix: 500K, 20M, 1G, powers of 1024); overrides install.max_download_bytes' -r
complete -c updater -n "__fish_updater_using_subcommand apply" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand apply" -l now -d 'Run with the clock fixed at this time (RFC 3339): what expiry, trial deadlines, windows and records see. For tests, and to ask what would happen then (`updater check --now ...`)' -r
complete -c updater -n "__fish_updater_using_subcommand apply" -l no-reboot -d 'Install only; do not start a trial (the default)'
complete -c updater -n "__fish_updater_using_subcommand apply" -l reboot -d 'After installing, arm the bootloader\'s one-shot trial of the new slot and reboot into it'
complete -c updater -n "__fish_updater_using_subcommand apply" -l kexec -d 'After installing, verify the new slot\'s kernel and kexec into it as a trial (kexec.policy decides what happens when the kernel refuses)'
complete -c updater -n "__fish_updater_using_subcommand apply" -l dry-run -d 'Print the plan — bytes to fetch, bytes reused from each slot, number of requests — and stop: nothing is written (the slots are read to find what can be reused). With --kexec: install, then verify and load the kernel and unload it, reporting what would run'
complete -c updater -n "__fish_updater_using_subcommand apply" -l json -d 'Emit JSON-lines progress events on stdout instead of a progress bar'
complete -c updater -n "__fish_updater_using_subcommand apply" -l reinstall -d 'Install the release even when the booted slot runs it already (by default that is nothing to do)'
complete -c updater -n "__fish_updater_using_subcommand apply" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand apply" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c updater -n "__fish_updater_using_subcommand activate" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand activate" -l now -d 'Run with the clock fixed at this time (RFC 3339): what expiry, trial deadlines, windows and records see. For tests, and to ask what would happen then (`updater check --now ...`)' -r
complete -c updater -n "__fish_updater_using_subcommand activate" -l reboot -d 'Boot it by a one-shot reboot trial (default: as kexec.policy says)'
complete -c updater -n "__fish_updater_using_subcommand activate" -l kexec -d 'Boot it by a kexec trial'
complete -c updater -n "__fish_updater_using_subcommand activate" -l dry-run -d 'With --kexec: verify and load the kernel, then unload it'
complete -c updater -n "__fish_updater_using_subcommand activate" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand activate" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand check" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand check" -l now -d 'Run with the clock fixed at this time (RFC 3339): what expiry, trial deadlines, windows and records see. For tests, and to ask what would happen then (`updater check --now ...`)' -r
complete -c updater -n "__fish_updater_using_subcommand check" -l json -d 'Print JSON'
complete -c updater -n "__fish_updater_using_subcommand check" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand check" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand daemon" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand daemon" -l now -d 'Run with the clock fixed at this time (RFC 3339): what expiry, trial deadlines, windows and records see. For tests, and to ask what would happen then (`updater check --now ...`)' -r
complete -c updater -n "__fish_updater_using_subcommand daemon" -l once -d 'Poll once, act, and exit with that poll\'s result'
complete -c updater -n "__fish_updater_using_subcommand daemon" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand daemon" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand status" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand status" -l now -d 'Run with the clock fixed at this time (RFC 3339): what expiry, trial deadlines, windows and records see. For tests, and to ask what would happen then (`updater check --now ...`)' -r
complete -c updater -n "__fish_updater_using_subcommand status" -l json -d 'Print JSON'
complete -c updater -n "__fish_updater_using_subcommand status" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c updater -n "__fish_updater_using_subcommand health" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand health" -l now -d 'Run with the clock fixed at this time (RFC 3339): what expiry, trial deadlines, windows and records see. For tests, and to ask what would happen then (`updater check --now ...`)' -r
complete -c updater -n "__fish_updater_using_subcommand health" -l json -d 'Print the outcome as JSON'
complete -c updater -n "__fish_updater_using_subcommand health" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand health" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c updater -n "__fish_updater_using_subcommand mark-good" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand mark-good" -l now -d 'Run with the clock fixed at this time (RFC 3339): what expiry, trial deadlines, windows and records see. For tests, and to ask what would happen then (`updater check --now ...`)' -r
complete -c updater -n "__fish_updater_using_subcommand mark-good" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand mark-good" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand mark-bad" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand mark-bad" -l now -d 'Run with the clock fixed at this time (RFC 3339): what expiry, trial deadlines, windows and records see. For tests, and to ask what would happen then (`updater check --now ...`)' -r
complete -c updater -n "__fish_updater_using_subcommand mark-bad" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand mark-bad" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand rollback" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand rollback" -l now -d 'Run with the clock fixed at this time (RFC 3339): what expiry, trial deadlines, windows and records see. For tests, and to ask what would happen then (`updater check --now ...`)' -r
complete -c updater -n "__fish_updater_using_subcommand rollback" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand rollback" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand root; and not __fish_seen_subcommand_from refresh help" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand root; and not __fish_seen_subcommand_from refresh help" -l now -d 'Run with the clock fixed at this time (RFC 3339): what expiry, trial deadlines, windows and records see. For tests, and to ask what would happen then (`updater check --now ...`)' -r
complete -c updater -n "__fish_updater_using_subcommand root; and not __fish_seen_subcommand_from refresh help" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand root; and not __fish_seen_subcommand_from refresh help" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand root; and not __fish_seen_subcommand_from refresh help" -f -a "refresh" -d 'Fetch the root chain again from the release server, verify it from the image\'s root, and replace the persisted chain with it. It must reach the newest root version this device accepted'
complete -c updater -n "__fish_updater_using_subcommand root; and not __fish_seen_subcommand_from refresh help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c updater -n "__fish_updater_using_subcommand root; and __fish_seen_subcommand_from refresh" -l config -d 'Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml)' -r -F
complete -c updater -n "__fish_updater_using_subcommand root; and __fish_seen_subcommand_from refresh" -l now -d 'Run with the clock fixed at this time (RFC 3339): what expiry, trial deadlines, windows and records see. For tests, and to ask what would happen then (`updater check --now ...`)' -r
complete -c updater -n "__fish_updater_using_subcommand root; and __fish_seen_subcommand_from refresh" -s v -l verbose -d 'Log more (repeat for more detail); UPDATER_LOG overrides'
complete -c updater -n "__fish_updater_using_subcommand root; and __fish_seen_subcommand_from refresh" -s h -l help -d 'Print help'
complete -c updater -n "__fish_updater_using_subcommand root; and __fish_seen_subcommand_from help" -f -a "refresh" -d 'Fetch the root chain again from the release server, verify it from the image\'s root, and replace the persisted chain with it. It must reach the newest root version this device accepted'
complete -c updater -n "__fish_updater_using_subcommand root; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from verify apply activate check daemon status health mark-good mark-bad rollback root help" -f -a "verify" -d 'Decide about a release as `apply` would, installing nothing (or check it against a keyring alone)'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from verify apply activate check daemon status health mark-good mark-bad rollback root help" -f -a "apply" -d 'Install a release into the inactive slot group'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from verify apply activate check daemon status health mark-good mark-bad rollback root help" -f -a "activate" -d 'Boot the release installed in the inactive slot as a trial (after a download-only install)'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from verify apply activate check daemon status health mark-good mark-bad rollback root help" -f -a "check" -d 'Poll the configured channel (or CHANNEL_URL) once and say what the daemon would do'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from verify apply activate check daemon status health mark-good mark-bad rollback root help" -f -a "daemon" -d 'Follow the configured channel: poll, install, boot in the allowed time, report (systemd Type=notify service)'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from verify apply activate check daemon status health mark-good mark-bad rollback root help" -f -a "status" -d 'Show the slot groups, what they hold, and any failure or pending trial'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from verify apply activate check daemon status health mark-good mark-bad rollback root help" -f -a "health" -d 'Reconcile a pending trial at boot: run the health checks and commit, or mark the slot bad'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from verify apply activate check daemon status health mark-good mark-bad rollback root help" -f -a "mark-good" -d 'Confirm the booted slot as good and make it the default'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from verify apply activate check daemon status health mark-good mark-bad rollback root help" -f -a "mark-bad" -d 'Mark a slot bad (default: the booted one) so it is never booted again'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from verify apply activate check daemon status health mark-good mark-bad rollback root help" -f -a "rollback" -d 'Make the other good slot the default again'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from verify apply activate check daemon status health mark-good mark-bad rollback root help" -f -a "root" -d 'The root of trust: fetch the root chain again and verify it from the image\'s root'
complete -c updater -n "__fish_updater_using_subcommand help; and not __fish_seen_subcommand_from verify apply activate check daemon status health mark-good mark-bad rollback root help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c updater -n "__fish_updater_using_subcommand help; and __fish_seen_subcommand_from root" -f -a "refresh" -d 'Fetch the root chain again from the release server, verify it from the image\'s root, and replace the persisted chain with it. It must reach the newest root version this device accepted'
