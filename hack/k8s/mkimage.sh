#!/bin/bash
# mkimage.sh NAME:TAG OUT.tar ROOTFS [ENTRYPOINT...]
# Writes a docker-archive ("docker save" format, what `ctr images import` reads) with one layer holding the directory
# ROOTFS. No registry, no Docker: tar, sha256sum and printf. The layer is reproducible (sorted, numeric owner 0, mtime 0).
# Knobs (env): MKIMAGE_CMD (the image's Cmd, words), MKIMAGE_PATH (the PATH it sets, default /usr/bin:/).
set -euo pipefail
REF=$1 OUT=$2 ROOT=$3
shift 3
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
tar --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$ROOT" -cf "$W/layer.tar" .
DIFF=$(sha256sum "$W/layer.tar" | cut -d' ' -f1)
EP=""
[ $# = 0 ] || EP=$(printf '"%s",' "$@")
CMD="" # MKIMAGE_CMD (words): the image's Cmd, the default arguments a pod may replace
[ -z "${MKIMAGE_CMD:-}" ] || CMD=$(printf ',"Cmd":[%s]' "$(printf '"%s",' $MKIMAGE_CMD | sed 's/,$//')")
printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":[%s]%s,"Env":["PATH=%s"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
	"${EP%,}" "$CMD" "${MKIMAGE_PATH:-/usr/bin:/}" "$DIFF" >"$W/config.json"
CFG=$(sha256sum "$W/config.json" | cut -d' ' -f1)
mv "$W/config.json" "$W/$CFG.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["layer.tar"]}]' "$CFG" "$REF" >"$W/manifest.json"
tar -C "$W" -cf "$OUT" manifest.json "$CFG.json" layer.tar
echo "$OUT: $REF ($(du -h "$OUT" | cut -f1))"
