#!/bin/sh
# Runs INSIDE the rootfs chroot after the packages are installed and iso/rootfs/ is copied in.
# Makes the image minisand's: the user, unit enablement, the boot-time trims that need the chroot's tools.
set -eu

GUEST_USER=minisand

# --- the user (exists in the image; its key arrives every boot through fw_cfg or a cidata seed)
if ! getent passwd "$GUEST_USER" >/dev/null; then
    useradd --uid 1000 --create-home --shell /bin/bash --user-group --password '*' "$GUEST_USER"
fi
chmod 0440 /etc/sudoers.d/minisand
chmod 0755 /usr/lib/minisand/firstboot
visudo -cq -f /etc/sudoers.d/minisand

# --- no host keys in the image: the first-boot unit restores or generates them per machine
rm -f /etc/ssh/ssh_host_*

# --- units: what boots, what never does
systemctl set-default multi-user.target
systemctl enable minisand-firstboot.service minisand-ready.service minisand-coldplug.service systemd-networkd.service systemd-resolved.service \
    containerd.service ssh.service
for unit in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer fstrim.timer e2scrub_all.timer \
        e2scrub_reap.service systemd-pstore.service getty@tty1.service remote-fs.target \
        sshd-keygen.service; do
    systemctl disable "$unit" >/dev/null 2>&1 || true
done
rm -f /etc/systemd/system/*.wants/sshd-keygen.service
# Static units that only cost time on a live image (their conditions refer to a persistent /etc and /usr,
# or they prompt on the console when /etc/machine-id is empty).
for link in \
    sysinit.target.wants/systemd-firstboot.service \
    sysinit.target.wants/ldconfig.service \
    sysinit.target.wants/systemd-hwdb-update.service \
    sysinit.target.wants/systemd-journal-catalog-update.service \
    sysinit.target.wants/systemd-update-done.service \
    sysinit.target.wants/systemd-machine-id-commit.service \
    sysinit.target.wants/systemd-random-seed.service \
    sysinit.target.wants/systemd-hibernate-clear.service \
    sysinit.target.wants/dracut-shutdown.service \
    multi-user.target.wants/getty.target \
    multi-user.target.wants/systemd-ask-password-wall.path \
    getty.target.wants/getty-static.service; do
    rm -f "/usr/lib/systemd/system/$link"
done

# Units and generators a live VM never needs. In an image whose /usr never changes, deleting a unit file is
# masking it; instances of modprobe@ are masked with /dev/null links (the template stays).
for f in \
    system/systemd-remount-fs.service system/systemd-network-generator.service \
    system/systemd-firstboot.service system/ldconfig.service system/systemd-hwdb-update.service \
    system/systemd-update-done.service system/systemd-journal-catalog-update.service \
    system/systemd-machine-id-commit.service system/systemd-pstore.service system/systemd-binfmt.service \
    system/proc-sys-fs-binfmt_misc.automount system/proc-sys-fs-binfmt_misc.mount \
    system/sys-fs-fuse-connections.mount system/sys-kernel-config.mount system/sys-kernel-debug.mount \
    system/sys-kernel-tracing.mount system/dev-hugepages.mount system/systemd-sysusers.service \
    system/systemd-ask-password-console.path system/systemd-ask-password-wall.path \
    system/systemd-sysext.socket system/systemd-sysinstall.socket system/systemd-factory-reset.socket \
    system/systemd-mute-console.socket system/systemd-journal-flush.service \
    system/e2scrub_all.timer system/e2scrub_reap.service system/fstrim.timer system/dpkg-db-backup.timer \
    system/apt-daily.timer system/apt-daily-upgrade.timer system/systemd-tmpfiles-clean.timer \
    system-generators/systemd-gpt-auto-generator system-generators/systemd-hibernate-resume-generator \
    system-generators/systemd-factory-reset-generator system-generators/systemd-system-update-generator \
    system-generators/systemd-ssh-generator system-generators/systemd-getty-generator \
    system-generators/systemd-debug-generator \
    system/kmod-static-nodes.service system/systemd-tmpfiles-setup-dev-early.service \
    system/systemd-tmpfiles-setup-dev.service system/systemd-udev-load-credentials.service; do
    rm -f "/usr/lib/systemd/$f"
done
# Every SSH session opens a PAM session: without pam_motd (run-parts over /etc/update-motd.d) and pam_mail
# each `minisand ssh -- CMD` costs two fewer process starts in the guest.
sed -i '/pam_motd\.so/d; /pam_mail\.so/d' /etc/pam.d/sshd
grep -Eq 'pam_(motd|mail)\.so' /etc/pam.d/sshd && exit 1
# sshd listens on all addresses: it need not wait for network.target (networkd's start), only for its keys
sed -i 's/^After=network.target /After=/' /usr/lib/systemd/system/ssh.service
grep -q '^After=network.target' /usr/lib/systemd/system/ssh.service && exit 1
for m in drm efi_pstore dm_mod loop configfs fuse; do
    ln -sf /dev/null "/usr/lib/systemd/system/modprobe@$m.service"
done

# --- /etc/systemd/system is persisted on the data disk (units minisand writes and enables survive a
# reboot). The image's own enablement moves to /usr/lib/systemd/system so that directory can start empty.
move_tree() {  # move_tree SRC DST: every entry of SRC into DST, replacing what DST had
    src=$1 dst=$2
    for entry in "$src"/* "$src"/.[!.]*; do
        [ -e "$entry" ] || [ -L "$entry" ] || continue
        name=${entry##*/}
        if [ -d "$entry" ] && [ ! -L "$entry" ]; then
            mkdir -p "$dst/$name"
            (move_tree "$entry" "$dst/$name")  # a subshell: sh functions have no local variables
            rmdir "$entry"
        else
            rm -rf "${dst:?}/$name"
            mv "$entry" "$dst/$name"
        fi
    done
}
move_tree /etc/systemd/system /usr/lib/systemd/system
# Not started at boot (links from the packages, in either directory before the move): logind and the D-Bus
# daemon (no PAM module registers sessions here, libpam-systemd is not installed; dbus.socket still starts the
# daemon for its first client, such as runc's systemd cgroup driver). systemd-tmpfiles-setup-dev is gone (its
# unit file is removed above): devtmpfs makes the device nodes and, without kmod-static-nodes, it had nothing
# to do but delay udevd; so is systemd-udev-load-credentials (udev rules passed as system credentials, which
# minisand never passes), which udevd waited for.
for link in multi-user.target.wants/systemd-logind.service sockets.target.wants/systemd-logind-varlink.socket \
        multi-user.target.wants/dbus.service; do
    rm -f "/usr/lib/systemd/system/$link"
done
# wants links left dangling by the removals above
find /usr/lib/systemd/system -path '*.wants/*' -xtype l -delete
# relative symlinks keep working after the move; absolute ones into /etc/systemd/system would not
if find /usr/lib/systemd/system -lname '/etc/systemd/system/*' | grep -q .; then
    echo "configure.sh: a unit symlink still points into /etc/systemd/system" >&2
    exit 1
fi

# --- a live image: machine-id comes from the data disk (or is transient without one)
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
ln -sf /etc/machine-id /var/lib/dbus/machine-id

# --- resolv.conf from systemd-resolved (DHCP's DNS servers through networkd)
chmod 0755 /usr/lib/minisand/announce
ln -sf ../run/systemd/resolve/stub-resolv.conf /etc/resolv.conf

# --- crictl talks to containerd
printf 'runtime-endpoint: unix:///run/containerd/containerd.sock\nimage-endpoint: unix:///run/containerd/containerd.sock\ntimeout: 10\n' \
    > /etc/crictl.yaml
