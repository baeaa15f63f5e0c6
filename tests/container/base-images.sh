#!/bin/sh
# Builds, locally, the two base images that the Dockerfile names, because no
# image can be pulled from a registry on the test machines:
#
#   debian:bookworm-slim     from `debootstrap --variant=minbase bookworm`,
#                            trimmed like Debian's slim images;
#   rust:1.95-slim-bookworm  that root plus gcc, CA certificates (with the
#                            host's extra ones) and the host's Rust toolchain
#                            (rust-base.Containerfile).
#
# An image that is already in podman's store is kept and not rebuilt: the
# first run takes a few minutes, later ones nothing. Remove them with
#   podman rmi rust:1.95-slim-bookworm debian:bookworm-slim
#
# The Debian mirror is the one apt is configured with here (or
# TOLLGATE_DEBIAN_MIRROR). Run by tests/container.rs with CONTAINERS_CONF
# set to containers.conf beside this file; needs root, podman, debootstrap.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
debian=docker.io/library/debian:bookworm-slim
rust=docker.io/library/rust:1.95-slim-bookworm
label=org.tollgate.test.base=1

# The first Debian archive URI apt is configured with (deb822 or one-line).
mirror() {
    if [ -n "${TOLLGATE_DEBIAN_MIRROR:-}" ]; then
        echo "$TOLLGATE_DEBIAN_MIRROR"
        return
    fi
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(http|https|file):/) { if ($i ~ /\/debian\/?$/) print $i; break } }' "$f"
    done
}

work=
cleanup() { [ -z "$work" ] || rm -rf "$work"; }
trap cleanup EXIT INT TERM

if podman image exists "$debian"; then
    echo "base-images: $debian is there"
else
    url=$(mirror | head -n 1)
    if [ -z "$url" ]; then
        echo "base-images: no Debian mirror in apt's sources; set TOLLGATE_DEBIAN_MIRROR" >&2
        exit 1
    fi
    work=$(mktemp -d /var/tmp/tollgate-base.XXXXXX)
    echo "base-images: debootstrap --variant=minbase bookworm from $url"
    debootstrap --variant=minbase bookworm "$work/root" "$url" >"$work/debootstrap.log" 2>&1 || {
        tail -n 30 "$work/debootstrap.log" >&2
        exit 1
    }
    root=$work/root
    # As Debian's slim images: no documentation, manuals or translations,
    # now or from packages installed later; no apt lists or caches.
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
CFG
    cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$root/usr/share/man/"* "$root/usr/share/info/"* "$root/usr/share/locale/"* \
        "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin \
        "$root/var/cache/apt/archives/"*.deb "$root/var/log/"*.log "$root/debootstrap"
    : >"$root/etc/hostname"
    : >"$root/etc/resolv.conf"
    tar --numeric-owner -C "$root" -c . |
        podman import --change 'CMD ["bash"]' --change "LABEL $label" - "$debian" >/dev/null
    rm -rf "$work"
    work=
    echo "base-images: built $debian ($(podman image inspect --format '{{.Size}}' "$debian") bytes)"
fi

if podman image exists "$rust"; then
    echo "base-images: $rust is there"
else
    version=$(rustc --version)
    case $version in
    "rustc 1.95."*) ;;
    *)
        echo "base-images: the host's rustc is \"$version\", not 1.95" >&2
        exit 1
        ;;
    esac
    sysroot=$(realpath "$(rustc --print sysroot)")
    work=$(mktemp -d /var/tmp/tollgate-base.XXXXXX)
    mkdir "$work/ca"
    cp /usr/local/share/ca-certificates/*.crt "$work/ca/" 2>/dev/null || true
    cp "$here/rust-base.Containerfile" "$work/Containerfile"
    echo "base-images: building $rust with $version from $sysroot"
    nice -n 10 podman build --format docker --pull=never --network host --layers=false \
        --label "$label" --volume "$sysroot:/mnt/rust:ro" -t "$rust" "$work"
    rm -rf "$work"
    work=
fi
