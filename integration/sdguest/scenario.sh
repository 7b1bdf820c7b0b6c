#!/bin/sh
# The steps of each systemd-guest scenario, run by e2e.service at every
# boot once updater-health.service has decided the boot. Marks go to the
# serial console for integration/e2e.py. Variables: SCENARIO (from the data
# partition), VERSION (1 = the factory system in A, 2 = the release), SLOT,
# TRIAL, KEXEC (this boot was started by the agent's kexec), BOOTS.
E=/var/lib/updater/e2e
mark() { echo "E2E-MARK $*"; }
# A mark that must outlive what follows it (a jump, a reboot, the poweroff),
# whose console copy may be cut off: appended to the data partition first
# (with the boot's number), where integration/e2e.py reads it after the
# run, then printed. (BOOTS is set below, before any keep.)
keep() {
    echo "boot=$BOOTS $*" >> $E/kept
    sync
    mark "$*"
}
SCENARIO=$(cat $E/scenario)
VERSION=$(cat /etc/e2e/version)
SLOT=$(sed -n 's/.*updater\.slot=\([A-Za-z0-9_-]*\).*/\1/p' /proc/cmdline)
TRIAL=no; grep -q 'updater.trial=1' /proc/cmdline && TRIAL=yes
KEXEC=no; grep -q 'updater.kexec=1' /proc/cmdline && KEXEC=yes
BOOTS=$(( $(cat $E/boots 2>/dev/null || echo 0) + 1 ))
echo $BOOTS > $E/boots
sync
URL="http://10.0.2.100:8080/manifest.json"
mark "ready scenario=$SCENARIO boots=$BOOTS slot=$SLOT version=$VERSION trial=$TRIAL kexec=$KEXEC"
mark "cmdline $(cat /proc/cmdline)"
# What the agent logged in the boots before this one, from the journal kept
# on the data partition (what it said just before a jump is there; the
# console's copy of it races the shutdown).
if [ "$BOOTS" -gt 1 ]; then
    journalctl -D /var/log/journal -o cat --no-pager 2>/dev/null \
        | grep -E 'fed by systemd|kexec with|watchdog' | sed 's/^/E2E-JOURNAL /'
fi

# What systemd did in this boot: the health unit's result and log, when it
# and boot-complete.target became active (monotonic usec), how the data
# partition was mounted (a mount after an unclean stop replays the journal),
# and who feeds the hardware watchdog.
show() { systemctl show -P "$1" "$2"; }
mark "health result=$(show Result updater-health.service) status=$(show ExecMainStatus updater-health.service) log=$(journalctl -b -u updater-health.service -o cat --no-pager | grep -v '^Starting\|^Finished\|^Started' | tail -3 | tr '\n' '|')"
mark "order health=$(show ActiveEnterTimestampMonotonic updater-health.service) boot-complete=$(show ActiveEnterTimestampMonotonic boot-complete.target)"
mark "data-mount $(dmesg | grep 'EXT4-fs (vda4)' | tr '\n' '|')"
W=/sys/class/watchdog/watchdog0
pid1=no; ls -l /proc/1/fd 2>/dev/null | grep -q '/dev/watchdog' && pid1=yes
mark "watchdog runtime=$(systemctl show -P RuntimeWatchdogUSec) kexec=$(systemctl show -P KExecWatchdogUSec) state=$(cat $W/state 2>/dev/null) timeout=$(cat $W/timeout 2>/dev/null) nowayout=$(cat $W/nowayout 2>/dev/null) pid1-holds=$pid1 root=$(findmnt -n -o FSTYPE,OPTIONS /)"

finish() {
    keep "status $(updater status --json 2>&1)"
    keep "FINAL"
    systemctl poweroff
    sleep 600
}

apply_kexec() {
    mark "apply-start kexec"
    # The agent's log straight into the journal (systemd-cat hands it the
    # journal's stream: no process in between that the kexec shutdown could
    # stop before it passed the last lines on); the next boot reads it back.
    systemd-cat -t e2e-apply updater -v apply "$URL" --kexec
    mark "apply-returned"
    # systemctl kexec is stopping the system.
    sleep 600
}

# After a kexec trial passed its checks, its first cold boot is armed (the
# cold-boot guard). Stay up for twice the watchdog's timeout first (PID 1
# took over the watchdog the old slot left running and set its 30 s: the
# machine survives only if PID 1 feeds it). Then reboot cleanly: firmware,
# GRUB's one-shot, health commits.
cold_boot() {
    sleep 60
    mark "still-up uptime=$(cut -d' ' -f1 /proc/uptime) watchdog=$(cat /sys/class/watchdog/watchdog0/state 2>/dev/null)"
    keep "cold-boot-reboot"
    systemctl reboot
    sleep 600
}

daemon_report() {
    keep "daemon $(systemctl show -p Type -p ActiveState -p SubState -p WatchdogUSec -p NRestarts -p StatusText updater.service | tr '\n' ' ')"
}

case "$SCENARIO:$VERSION" in
sd-kexec:1|sd-hang:1|sd-hang-early:1|sd-health-fail:1)
    if [ "$BOOTS" = 1 ]; then apply_kexec; fi
    finish ;;
sd-kexec:2)
    if [ "$KEXEC" = yes ]; then cold_boot; fi
    finish ;;
sd-daemon:1)
    # updater.service follows the channel: it installs release 2 and boots
    # it by kexec. Nothing to do here but report, and wait for that.
    if [ "$BOOTS" = 1 ]; then
        # The daemon logs to the journal, which the next boot reads back.
        daemon_report
        sleep 600
        keep "error: the daemon did not boot the release"
    fi
    finish ;;
sd-daemon:2)
    if [ "$KEXEC" = yes ]; then daemon_report; cold_boot; fi
    # Committed by health at this cold boot; the daemon, restarted by the
    # boot, finds the channel's release already running.
    i=0
    while [ $i -lt 60 ] && ! systemctl show -P StatusText updater.service | grep -q 'up to date'; do sleep 2; i=$((i + 1)); done
    daemon_report
    finish ;;
sd-health-fail:2)
    # Health failed and is rebooting back to A.
    sleep 600
    keep "error: still running after a failed health check"
    finish ;;
*)
    keep "error: no steps for $SCENARIO in version $VERSION"
    finish ;;
esac
