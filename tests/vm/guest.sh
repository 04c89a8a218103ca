#!/bin/sh
# Runs as root in the VM at boot (socketlab-job.service starts it from the 9p share
# `job`, mounted at /mnt/job). Everything it prints goes to /mnt/job/output, which
# the host follows; the command's exit status goes to /mnt/job/status, then the VM
# powers off, which ends QEMU.
job=/mnt/job
echo "socketlab: guest.sh started" >/dev/console
exec >>"$job/output" 2>&1
finish() { echo "$1" >"$job/status.tmp" && mv "$job/status.tmp" "$job/status"; sync; poweroff -f; }
say() { printf '[vm] %s\n' "$*"; }

# User-mode networking (QEMU's -nic user): fixed addresses, no DHCP client needed.
ip link set lo up
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
echo "nameserver 10.0.2.3" >/etc/resolv.conf
# The host's extra trusted CAs (pip reaches PyPI through the host's network), added
# to the bundle directly: update-ca-certificates takes minutes under emulation.
if ls "$job"/ca/*.crt >/dev/null 2>&1; then
    cat "$job"/ca/*.crt >>/etc/ssl/certs/ca-certificates.crt
fi

say "unpacking the checkout into /root/socketlab"
rm -rf /root/socketlab && mkdir -p /root/socketlab
tar -xf "$job/checkout.tar" -C /root/socketlab || finish 125

say "waiting for the Docker Engine"
i=0
until docker info >/dev/null 2>&1; do
    i=$((i + 1)); [ "$i" -le 180 ] || { say "dockerd did not start in 180 s"; finish 125; }
    sleep 1
done
if [ -f "$job/images.tar" ]; then
    say "loading the host's images ($(du -m "$job/images.tar" | cut -f1) MB)"
    docker load -q -i "$job/images.tar" || finish 125
    while read -r from to; do docker tag "$from" "$to" || finish 125; done <"$job/retag"
fi

if [ -f "$job/engine-only" ]; then
    # tests/vm/run --engine-only: the command runs on the host, against this engine over
    # TCP (no TLS; the port is reachable only through QEMU's forward on the host's 127.0.0.1).
    port=$(cat "$job/engine-only")
    start=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/docker.service | head -n1)
    mkdir -p /etc/systemd/system/docker.service.d
    printf '[Service]\nExecStart=\nExecStart=%s -H tcp://0.0.0.0:%s --tls=false\n' "$start" "$port" \
        >/etc/systemd/system/docker.service.d/socketlab-tcp.conf
    systemctl daemon-reload && systemctl restart docker || finish 125
    i=0
    until docker -H "tcp://127.0.0.1:$port" info >/dev/null 2>&1; do
        i=$((i + 1)); [ "$i" -le 120 ] || { say "dockerd did not listen on tcp $port in 120 s"; finish 125; }
        sleep 1
    done
    say "$(uname -sr), $(docker version -f 'Docker {{.Server.Version}}'): engine listening on tcp port $port"
    touch "$job/engine-ready"
    until [ -f "$job/stop" ]; do sleep 1; done
    say "the host's command ended: $(docker ps -aq | wc -l) container(s) left in this engine"
    finish 0
fi

cd /root/socketlab
say "$(uname -sr), $(docker version -f 'Docker {{.Server.Version}}'), $(docker compose version 2>/dev/null || echo 'no Compose v2'), $(python3 -V)"
say "running: $(cat "$job/command.txt")"
export HOME=/root PYTHONUNBUFFERED=1 CI="${CI:-}"
[ -f "$job/env" ] && . "$job/env"
bash "$job/command.sh" </dev/null
finish $?
