#!/usr/bin/env bash
# The Debian package: ./scripts/package.sh builds it (Release, no
# sanitizers; the build folder is kept under $WBMB_BUILD_DIR/pkg-build and
# reused), then dpkg-deb checks its files and metadata, and the unpacked
# binary runs --version, --check-config against the packaged config, the
# confed converters, and starts against a test broker with the packaged
# config (db_path redirected into the temp root).
source "$(dirname "$0")/lib.sh"

PKG_BUILD_DIR=${WBMB_BUILD_DIR:-$T_DIR}/pkg-build
export PKG_BUILD_DIR PKG_OUT_DIR="$T_DIR/out" PKG_SKIP_DEPS=1
if ! command -v dpkg-shlibdeps >/dev/null; then
    t_log "dpkg-shlibdeps missing: Depends falls back to the fixed list"
fi
check "scripts/package.sh builds a .deb" bash -c "'$WBMB_SOURCE_DIR/scripts/package.sh' >'$T_DIR/deb.path' 2>'$T_DIR/package.log'"
DEB=$(cat "$T_DIR/deb.path")
check "the .deb is where package.sh says" test -f "$DEB"
check "named wb-mqtt-bridge_<version>_<arch>.deb" bash -c "basename '$DEB' | grep -qE '^wb-mqtt-bridge_[0-9.]+_[a-z0-9]+\.deb$'"

dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's#^\./#/#' >"$T_DIR/files"
for f in /usr/bin/wb-mqtt-bridge /etc/wb-mqtt-bridge.yaml /etc/wb-configs.d/22wb-mqtt-bridge \
    /lib/systemd/system/wb-mqtt-bridge.service /var/lib/wb-mqtt-bridge/ \
    /usr/share/man/man8/wb-mqtt-bridge.8.gz \
    /usr/share/wb-mqtt-confed/schemas/wb-mqtt-bridge.schema.json \
    /usr/share/doc/wb-mqtt-bridge/example.yaml; do
    check "package holds $f" grep -qx "$f" "$T_DIR/files"
done
check "nothing outside /usr /etc /lib /var" bash -c "! grep -vE '^/(usr|etc|lib|var)(/|$)' '$T_DIR/files'"

dpkg-deb -f "$DEB" >"$T_DIR/control"
DEPENDS=$(dpkg-deb -f "$DEB" Depends)
t_log "Depends: $DEPENDS"
for lib in libpaho-mqtt1.3 libsqlite3-0 libjson-c5 libyaml-0-2 libmicrohttpd12 libpq5 libuuid1; do
    check "Depends on $lib" bash -c "echo '$DEPENDS' | tr ',' '\n' | grep -qE '^ *$lib( |$)'"
done
check "no -dev package and no sanitizer runtime in Depends" \
    bash -c "! echo '$DEPENDS' | grep -qE -- '-dev|libasan|libubsan'"
check "Package: wb-mqtt-bridge" test "$(dpkg-deb -f "$DEB" Package)" = wb-mqtt-bridge
check "Version matches --version" bash -c \
    "'$WBMB_BIN' --version | grep -qF \"\$(dpkg-deb -f '$DEB' Version)\""
mkdir -p "$T_DIR/ctrl"
dpkg-deb -e "$DEB" "$T_DIR/ctrl"
check "conffiles lists /etc/wb-mqtt-bridge.yaml" grep -qx /etc/wb-mqtt-bridge.yaml "$T_DIR/ctrl/conffiles"
check "conffiles lists the wb-configs.d file" grep -qx /etc/wb-configs.d/22wb-mqtt-bridge "$T_DIR/ctrl/conffiles"
check "maintainer scripts are valid sh" bash -c "for s in postinst prerm postrm; do sh -n '$T_DIR/ctrl/'\$s || exit 1; done"

ROOT="$T_DIR/root"
dpkg-deb -x "$DEB" "$ROOT"
check "wb-configs.d keeps the config and the database (wb_move)" bash -c \
    "grep -qx 'wb_move /etc/wb-mqtt-bridge.yaml' '$T_DIR/root/etc/wb-configs.d/22wb-mqtt-bridge' && grep -qx 'wb_move /var/lib/wb-mqtt-bridge' '$T_DIR/root/etc/wb-configs.d/22wb-mqtt-bridge'"
BIN="$ROOT/usr/bin/wb-mqtt-bridge"
check "unpacked binary runs --version" bash -c "'$BIN' --version | grep -q '^wb-mqtt-bridge '"
check "unpacked binary is built without sanitizers" bash -c "! ldd '$BIN' | grep -qE 'libasan|libubsan'"
check "unpacked binary is stripped (no .symtab)" bash -c "! readelf -S '$BIN' | grep -q '\.symtab'"
check "--check-config accepts the packaged config" "$BIN" -c "$ROOT/etc/wb-mqtt-bridge.yaml" --check-config
check "packaged config has no devices and the /var/lib db path" bash -c \
    "'$BIN' config to-json <'$ROOT/etc/wb-mqtt-bridge.yaml' | jq -e '.devices == [] and .persistence.db_path == \"/var/lib/wb-mqtt-bridge/state_store.db\"'"
check "packaged schema is valid JSON" jq -e '.configFile.path == "/etc/wb-mqtt-bridge.yaml"' \
    "$ROOT/usr/share/wb-mqtt-confed/schemas/wb-mqtt-bridge.schema.json"
check "man page is gzip and renders" bash -c \
    "zcat '$ROOT/usr/share/man/man8/wb-mqtt-bridge.8.gz' | grep -q '^\.TH WB-MQTT-BRIDGE 8'"
if command -v man >/dev/null; then
    check "man page has no roff warnings" bash -c \
        "[ -z \"\$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l '$ROOT/usr/share/man/man8/wb-mqtt-bridge.8.gz' 2>&1 >/dev/null)\" ]"
    check "man page documents config to-json, /health and SIGHUP" bash -c \
        "man -l '$ROOT/usr/share/man/man8/wb-mqtt-bridge.8.gz' 2>/dev/null | col -b >'$T_DIR/man.txt'; grep -q 'config to-json' '$T_DIR/man.txt' && grep -q 'GET /health' '$T_DIR/man.txt' && grep -q SIGHUP '$T_DIR/man.txt'"
fi

# The packaged config starts cleanly (against a test broker, with the db
# redirected into the temp root: /var/lib is not ours to write here).
start_broker
sed -e "s#port: 1883#port: $MQTT_PORT#" -e "s#/var/lib/wb-mqtt-bridge/#$ROOT/var/lib/wb-mqtt-bridge/#" \
    -e "s#listen: 127.0.0.1:8080#listen: \"\"#" "$ROOT/etc/wb-mqtt-bridge.yaml" >"$T_DIR/config.yaml"
WBMB_BIN="$BIN" start_bridge "$T_DIR/config.yaml"
check "packaged binary + config connect" wait_for 30 log_has "MQTT connected"
check "no error or warning at start-up" bash -c "! grep -E ' (error|warning) ' '$T_DIR/bridge.log'"
stop_bridge TERM
check "clean stop" test "$BRIDGE_RC" -eq 0
check "database created in the state directory" test -f "$ROOT/var/lib/wb-mqtt-bridge/state_store.db"
t_done
