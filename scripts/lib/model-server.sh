# Sourced by the reproduction scripts: `serve MODEL_DIR NAME LOG` starts
# `leafe-trainer serve` ($T) for MODEL_DIR as NAME on $port (on $device,
# default cpu; more flags in the array serve_flags), logging to LOG, once it
# answers; `stop_serving` stops it, and so does the script's exit.
server=
serve() {
  stop_serving
  $T serve --model "$1" --name "$2" --port "$port" --device "${device:-cpu}" \
    ${serve_flags[@]+"${serve_flags[@]}"} > "$3" 2>&1 &
  server=$!
  for _ in $(seq 300); do
    if curl -sf "http://127.0.0.1:$port/v1/models" > /dev/null; then return; fi
    kill -0 "$server" 2> /dev/null || break
    sleep 0.2
  done
  echo "the model server did not start: see $3" >&2
  exit 1
}
stop_serving() {
  if [[ -n $server ]]; then kill "$server" 2> /dev/null || true; wait "$server" 2> /dev/null || true; fi
  server=
}
trap stop_serving EXIT
