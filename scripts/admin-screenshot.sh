#!/bin/sh
# admin-screenshot.sh regenerates docs/admin-dashboard.png, the picture of
# the admin dashboard in the README: it starts ampsd with an admin server
# sampling every second, runs publishers and subscribers against it with
# ampsbench (TCP, then WebSocket joining at a higher rate, plus a SOW
# topic), and takes a screenshot of the dashboard with headless Chromium.
#
# Usage: scripts/admin-screenshot.sh [output.png]   (default docs/admin-dashboard.png)
#
# Environment (loopback ports; change them if they are taken):
#   SHOT_TCP_PORT   AMPS TCP transport (default 19107)
#   SHOT_WS_PORT    WebSocket transport (default 19108)
#   SHOT_ADMIN_PORT admin HTTP server (default 19185)
#   SHOT_SECONDS    how long load runs before the screenshot (default 40)
#
# Needs go and Debian's chromium. Every process it starts is stopped by its
# pid when it exits.
set -eu
cd "$(dirname "$0")/.."
out=${1:-docs/admin-dashboard.png}
tcp=${SHOT_TCP_PORT:-19107}
ws=${SHOT_WS_PORT:-19108}
adm=${SHOT_ADMIN_PORT:-19185}
seconds=${SHOT_SECONDS:-40}
chromium=$(command -v chromium || command -v chromium-browser || echo /usr/bin/chromium)

work=$(mktemp -d)
pids=
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

go build -o "$work/ampsd" ./cmd/ampsd
go build -o "$work/ampsbench" ./cmd/ampsbench

cat >"$work/ampsd.xml" <<XML
<AMPSConfig>
  <Name>demo-broker</Name>
  <Description>ampsbroker admin dashboard demo</Description>
  <Transports>
    <Transport>
      <Name>json-tcp</Name><Type>tcp</Type><InetAddr>127.0.0.1:$tcp</InetAddr>
      <Protocol>amps</Protocol><MessageType>json</MessageType>
    </Transport>
    <Transport>
      <Name>json-ws</Name><Type>tcp</Type><InetAddr>127.0.0.1:$ws</InetAddr>
      <Protocol>websocket</Protocol><MessageType>json</MessageType>
    </Transport>
  </Transports>
  <SOW>
    <Topic>
      <Name>loadgen-sow</Name><Pattern>loadgen/sow/.+</Pattern>
      <MessageType>json</MessageType><Key>/k</Key><Durability>transient</Durability>
    </Topic>
  </SOW>
  <Admin>
    <InetAddr>127.0.0.1:$adm</InetAddr>
    <Interval>1s</Interval>
  </Admin>
</AMPSConfig>
XML

"$work/ampsd" -config "$work/ampsd.xml" -log-level warn &
pids="$pids $!"
# Wait for the admin server.
i=0
until curl -sf "http://127.0.0.1:$adm/amps/instance/name.json" >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -gt 100 ]; then
		echo "admin-screenshot: ampsd did not start on 127.0.0.1:$adm" >&2
		exit 1
	fi
	sleep 0.1
done

bench() {
	"$work/ampsbench" -size 256 -drain 1s "$@" >"$work/bench.$(date +%s%N).log" 2>&1 &
	pids="$pids $!"
}
# One TCP publisher to ten subscribers for the whole run, a SOW publisher,
# and a WebSocket pair joining a third of the way in at a higher rate, so
# that the chart shows a step.
bench -url "tcp://127.0.0.1:$tcp/amps/json" -scenario 1to10 -rate 300 -duration "$((seconds + 20))s"
bench -url "tcp://127.0.0.1:$tcp/amps/json" -scenario sow -rate 100 -duration "$((seconds + 20))s"
sleep $((seconds / 3))
"$work/ampsbench" -ws -url "ws://127.0.0.1:$ws/amps/json" -size 256 -drain 1s -scenario 1to1 -rate 900 \
	-duration "$((seconds + 20))s" >"$work/bench-ws.log" 2>&1 &
pids="$pids $!"
sleep $((seconds - seconds / 3))

mkdir -p "$(dirname "$out")"
"$chromium" --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
	--disable-component-update --disable-sync --disable-dev-shm-usage --disable-extensions \
	--user-data-dir="$work/profile" --hide-scrollbars --window-size=1280,1500 \
	--virtual-time-budget=3000 --screenshot="$work/shot.png" "http://127.0.0.1:$adm/" >"$work/chromium.log" 2>&1 || {
	cat "$work/chromium.log" >&2
	exit 1
}
cp "$work/shot.png" "$out"
echo "admin-screenshot: wrote $out"
