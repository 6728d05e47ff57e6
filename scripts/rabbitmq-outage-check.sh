#!/usr/bin/env bash
# Fault check (manual; it stops the local RabbitMQ, so CI never runs it): while events are being
# produced, RabbitMQ goes away and comes back. Expected: the API keeps accepting (202), /readyz
# reports the broker degraded but stays ready, and afterwards every event is published and
# handled exactly once.
#   usage: scripts/rabbitmq-outage-check.sh   (needs a built debug binary, PostgreSQL, RabbitMQ)
set -euo pipefail
bin=${CARGO_TARGET_DIR:-target}/debug/depot
db=depot_outage_$$
work=$(mktemp -d)
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db"
cleanup() {
  pkill -TERM -f "$bin serve" || true
  rabbitmqctl start_app >/dev/null 2>&1 || true
  sleep 1
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
}
trap cleanup EXIT
cd "$work"
DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f \
DEPOT_DEBUG_ROUTES=true DEPOT_NAMESPACE=outage-$$ DEPOT_HTTP_ADDR=127.0.0.1:18080 \
DEPOT_METRICS_ADDR=127.0.0.1:19090 DEPOT_LOG_FILTER=warn "$bin" serve >server.log 2>&1 &
sleep 3
accepted=0
for i in $(seq 1 40); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' -d '{}' \
    localhost:18080/api/v1/_debug/pings)
  [ "$code" = 202 ] && accepted=$((accepted + 1))
  [ "$i" = 10 ] && { rabbitmqctl stop_app >/dev/null; echo "RabbitMQ stopped after $i events"; }
  [ "$i" = 25 ] && echo "readyz during the outage: $(curl -s localhost:18080/readyz)"
  [ "$i" = 30 ] && { rabbitmqctl start_app >/dev/null; echo "RabbitMQ started after $i events"; }
  sleep 0.25
done
echo "accepted: $accepted of 40"
sleep 15
q() { psql -h 127.0.0.1 -U postgres -d "$db" -Atc "$1"; }
echo "outbox by status: $(q "select string_agg(status || '=' || n, ' ') from (select status, count(*) n from outbox group by 1) s")"
echo "handled (rows, distinct messages): $(q "select count(*) || ', ' || count(distinct target_id) from audit_log where action = 'debug.ping.handled'")"
