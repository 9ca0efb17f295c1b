#!/usr/bin/env bash
# testenv.sh — install, start and stop the real services shoal's integration
# tests run against, all on 127.0.0.1 and on free ports.
#
#   scripts/testenv.sh up [SERVICE...]   install what is missing, start what is not running,
#                                        write .testenv/env; idempotent
#   scripts/testenv.sh down              stop every process this script started (by PID)
#   scripts/testenv.sh run [SERVICE...] -- CMD...
#                                        up, run CMD with the variables exported, down
#                                        (always); exits with CMD's status. `make test` uses it.
#   scripts/testenv.sh env               print `export VAR=value` lines: eval "$(scripts/testenv.sh env)"
#   scripts/testenv.sh stop-service SERVICE
#                                        stop a running service's processes but keep its ports,
#                                        data and variables, for a test that takes it away mid-run
#   scripts/testenv.sh start-service SERVICE
#                                        start it again after stop-service: same ports, same data
#                                        (services with a SERVICE_restart function: kafka,
#                                        zookeeper, zookeeper_ensemble)
#   scripts/testenv.sh stop-process SERVICE PROC
#   scripts/testenv.sh start-process SERVICE PROC
#                                        the same for one process of a service (one node of
#                                        zookeeper_ensemble; services with SERVICE_start_process)
#   scripts/testenv.sh status            one line per started process
#   scripts/testenv.sh list              the known services
#
# Layout (all under .testenv/, git-ignored):
#   env              VAR=value lines for every running service (set -a; . .testenv/env)
#   env.d/SERVICE    the same, one file per service; env is their concatenation
#   pids/SERVICE/PROC.pid   "PID STARTTIME" of each process, so `down` never kills a recycled PID
#   logs/PROC.log    stdout+stderr of each process
#   data/SERVICE/    scratch space a service may use (data dirs, configs)
#
# Adding a service is one block below: a SERVICE_packages function (Debian packages it
# needs, may print nothing), and a SERVICE_start function that picks ports with
# free_port, starts processes with spawn, waits with wait_for, and records its variables
# with set_env (set -e is off inside SERVICE_start, which runs in an `if`: end each step
# with `|| return 1`); optionally SERVICE_check (is a running instance still healthy?)
# so that a second `up` reuses it, and SERVICE_restart (start again with the ports,
# data and variables of the last SERVICE_start) for start-service, and
# SERVICE_start_process PROC (the same for one process) for start-process. Then add
# SERVICE to SERVICES.
#
# Environment: TESTENV_DIR (default REPO/.testenv), TESTENV_START_TIMEOUT (seconds a
# service may take to answer, default 60).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TESTENV_DIR=${TESTENV_DIR:-$REPO/.testenv}
START_TIMEOUT=${TESTENV_START_TIMEOUT:-60}
PIDDIR=$TESTENV_DIR/pids
LOGDIR=$TESTENV_DIR/logs
ENVDIR=$TESTENV_DIR/env.d
DATADIR=$TESTENV_DIR/data
ENVFILE=$TESTENV_DIR/env

# Every known service, in start order.
SERVICES=(node_exporter kafka zookeeper zookeeper_ensemble dnsmasq)

log() { printf 'testenv: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------
# Services
# ---------------------------------------------------------------------------

# node_exporter: Debian's prometheus-node-exporter, a real exporter to scrape.
# SHOAL_TEST_NODE_EXPORTER=127.0.0.1:PORT
node_exporter_packages() { echo prometheus-node-exporter; }
node_exporter_start() {
	local port
	free_port port
	# Debian's build turns the systemd collector on, and it fails on every scrape where
	# there is no systemd (CI, containers); everything else works there. The textfile
	# directory is our own, empty one, so the output does not depend on the machine's
	# /var/lib/prometheus/node-exporter.
	spawn node_exporter /usr/bin/prometheus-node-exporter \
		--web.listen-address="127.0.0.1:$port" \
		--collector.textfile.directory="$DATADIR/node_exporter" \
		--no-collector.systemd \
		|| return 1
	wait_for node_exporter http_ok "http://127.0.0.1:$port/metrics" || return 1
	set_env SHOAL_TEST_NODE_EXPORTER "127.0.0.1:$port"
}
node_exporter_check() { http_ok "http://$(get_env SHOAL_TEST_NODE_EXPORTER)/metrics"; }

# kafka: Apache Kafka (KRaft, one node that is broker and controller) from Maven
# Central, run with the JVM. The jars are fetched once by Maven from
# scripts/kafka/pom.xml into .cache/kafka/VERSION/lib (git-ignored, 54 MB, kept
# by `down` and `clean`, removed by `make distclean`).
#   SHOAL_TEST_KAFKA=127.0.0.1:PORT            PLAINTEXT listener
#   SHOAL_TEST_KAFKA_SASL=127.0.0.1:PORT       SASL_PLAINTEXT listener, mechanism PLAIN,
#   SHOAL_TEST_KAFKA_SASL_USER, _PASSWORD        with this user
#   SHOAL_TEST_KAFKA_LOGDIR=/abs/dir           the broker's log.dirs (bytes on disk)
#   SHOAL_TEST_KAFKA_CTL=/abs/scripts/testenv.sh  a test stops and restarts the same
#   SHOAL_TEST_KAFKA_TESTENV_DIR=/abs/.testenv    broker (same ports, same data) with
#       TESTENV_DIR=$SHOAL_TEST_KAFKA_TESTENV_DIR $SHOAL_TEST_KAFKA_CTL stop-service kafka
#       TESTENV_DIR=$SHOAL_TEST_KAFKA_TESTENV_DIR $SHOAL_TEST_KAFKA_CTL start-service kafka
# Broker settings: scripts/kafka/server.properties.in (auto.create.topics.enable=false).
KAFKA_VERSION=4.1.1 # keep in step with kafka.version in scripts/kafka/pom.xml
KAFKA_LIB=$REPO/.cache/kafka/$KAFKA_VERSION/lib
KAFKA_SASL_USER=shoal
KAFKA_SASL_PASSWORD=shoal-secret
JAVA=${JAVA:-java}

kafka_packages() {
	command -v "$JAVA" >/dev/null 2>&1 || echo openjdk-17-jre-headless
	kafka_fetched || command -v mvn >/dev/null 2>&1 || echo maven
}

# kafka_fetched: the jars are in the cache, fetched by this very pom.
kafka_fetched() {
	[[ -f $KAFKA_LIB/.complete && $(cat "$KAFKA_LIB/.complete") == "$(kafka_pom_sum)" ]]
}
kafka_pom_sum() { sha256sum "$REPO/scripts/kafka/pom.xml" | cut -d' ' -f1; }

# kafka_fetch: Maven copies the broker and its dependencies into a fresh
# directory, which replaces the cache only once it is complete.
kafka_fetch() {
	kafka_fetched && return 0
	local tmp=$KAFKA_LIB.tmp.$$ t0=$SECONDS out
	# Leftovers of an interrupted fetch (up holds the lock: none is running).
	rm -rf "$KAFKA_LIB".tmp.*
	mkdir -p "$tmp"
	log "fetching Apache Kafka $KAFKA_VERSION with Maven into $KAFKA_LIB"
	if ! out=$(mvn -q -B -Dstyle.color=never -f "$REPO/scripts/kafka/pom.xml" \
		dependency:copy-dependencies -DoutputDirectory="$tmp" 2>&1 </dev/null); then
		printf '%s\n' "$out" | tail -n 40 | sed 's/^/    /' >&2
		rm -rf "$tmp"
		log "mvn failed"
		return 1
	fi
	if [[ ! -f $tmp/kafka_2.13-$KAFKA_VERSION.jar ]]; then
		rm -rf "$tmp"
		log "mvn did not fetch kafka_2.13-$KAFKA_VERSION.jar: is scripts/kafka/pom.xml at $KAFKA_VERSION?"
		return 1
	fi
	kafka_pom_sum >"$tmp/.complete"
	rm -rf "$KAFKA_LIB"
	mv "$tmp" "$KAFKA_LIB"
	log "fetched $(find "$KAFKA_LIB" -name '*.jar' | wc -l) jars ($(du -sh "$KAFKA_LIB" | cut -f1)) in $((SECONDS - t0))s"
}

# The JVM command line, before the main class. A small heap: the tests send
# megabytes, not gigabytes. Logging goes through slf4j to reload4j
# (scripts/kafka/log4j.properties); log4j2, also on the class path, has no
# configuration, and its status logger would say so on every start.
KAFKA_JAVA=("$JAVA" -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError
	-Djava.awt.headless=true "-Dlog4j.configuration=file:$REPO/scripts/kafka/log4j.properties"
	-Dlog4j2.statusLoggerLevel=OFF -cp "$KAFKA_LIB/*")

# kafka_start: new ports, a freshly formatted data directory, then start.
kafka_start() {
	kafka_fetch || return 1
	local port sport cport dir=$DATADIR/kafka
	free_port port
	free_port sport
	free_port cport
	rm -rf "$dir"
	mkdir -p "$dir/logs" || return 1
	sed -e "s|@PORT@|$port|g" -e "s|@SASL_PORT@|$sport|g" -e "s|@CONTROLLER_PORT@|$cport|g" \
		-e "s|@LOG_DIRS@|$dir/logs|g" -e "s|@SASL_USER@|$KAFKA_SASL_USER|g" \
		-e "s|@SASL_PASSWORD@|$KAFKA_SASL_PASSWORD|g" \
		"$REPO/scripts/kafka/server.properties.in" >"$dir/server.properties" || return 1
	# A cluster id is 16 random bytes in unpadded URL-safe base64 (what
	# `StorageTool random-uuid` prints, without a JVM start of its own).
	local cid
	cid=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22) || return 1
	mkdir -p "$LOGDIR"
	"${KAFKA_JAVA[@]}" kafka.tools.StorageTool format -t "$cid" -c "$dir/server.properties" \
		>>"$LOGDIR/kafka-format.log" 2>&1 || {
		LAST_PROC=kafka-format
		log "formatting the Kafka log directory failed"
		return 1
	}
	set_env SHOAL_TEST_KAFKA "127.0.0.1:$port"
	set_env SHOAL_TEST_KAFKA_SASL "127.0.0.1:$sport"
	set_env SHOAL_TEST_KAFKA_SASL_USER "$KAFKA_SASL_USER"
	set_env SHOAL_TEST_KAFKA_SASL_PASSWORD "$KAFKA_SASL_PASSWORD"
	set_env SHOAL_TEST_KAFKA_LOGDIR "$dir/logs"
	set_env SHOAL_TEST_KAFKA_CTL "$REPO/scripts/testenv.sh"
	set_env SHOAL_TEST_KAFKA_TESTENV_DIR "$TESTENV_DIR"
	kafka_launch
}

# kafka_restart (start-service): the same ports and data as before stop-service.
kafka_restart() {
	[[ -f $DATADIR/kafka/server.properties && -f $DATADIR/kafka/logs/meta.properties ]] || {
		log "kafka was never started here (no $DATADIR/kafka): run up first"
		return 1
	}
	kafka_launch
}

kafka_launch() {
	local addr
	addr=$(get_env SHOAL_TEST_KAFKA) || return 1
	spawn kafka "${KAFKA_JAVA[@]}" kafka.Kafka "$DATADIR/kafka/server.properties" || return 1
	wait_for kafka kafka_ready "${addr%:*}" "${addr##*:}" || return 1
}
kafka_check() {
	local addr
	addr=$(get_env SHOAL_TEST_KAFKA) || return 1
	kafka_ready "${addr%:*}" "${addr##*:}"
}

# kafka_ready HOST PORT: the broker answers a Metadata request (v4, no topics)
# listing at least one broker, which it does only once it has caught up with
# the controller and serves clients. Plain bash: no JVM start per poll, and no
# python3 needed.
kafka_ready() {
	local out
	# shellcheck disable=SC2016 # expanded by the inner bash
	out=$(timeout 3 bash -c '
		exec 3<>"/dev/tcp/$1/$2" || exit 1
		# size 20 | api_key 3 (Metadata) | version 4 | correlation id 42 |
		# client id "probe" | topics: empty array | allow_auto_topic_creation false
		printf "\x00\x00\x00\x14\x00\x03\x00\x04\x00\x00\x00\x2a\x00\x05probe\x00\x00\x00\x00\x00" >&3
		# size | correlation id | throttle_time_ms | number of brokers
		head -c 16 <&3 | od -An -tu1 -v
	' _ "$1" "$2" 2>/dev/null) || return 1
	local -a b
	read -ra b <<<"$out"
	((${#b[@]} == 16)) || return 1
	# Correlation id 42, and a broker count of at least one.
	((b[4] == 0 && b[5] == 0 && b[6] == 0 && b[7] == 42)) || return 1
	((b[12] == 0 && b[13] == 0 && (b[14] > 0 || b[15] > 0)))
}

# dnsmasq: Debian's dnsmasq (dnsmasq-base), the real DNS server of the
# dns_sd_configs tests. It runs no shared process: each test starts its own
# dnsmasq with a config it writes (SRV records can only change by restarting
# dnsmasq, which a shared one could not do for one test), through
# discovery/dnsmasqtest. This service installs the package and checks that
# the binary runs.
# SHOAL_TEST_DNSMASQ=/usr/sbin/dnsmasq
dnsmasq_packages() { command -v dnsmasq >/dev/null 2>&1 || [[ -x /usr/sbin/dnsmasq ]] || echo dnsmasq-base; }
dnsmasq_start() {
	local bin
	bin=$(command -v dnsmasq 2>/dev/null || echo /usr/sbin/dnsmasq)
	"$bin" --version >/dev/null 2>&1 || {
		log "$bin does not run"
		return 1
	}
	set_env SHOAL_TEST_DNSMASQ "$bin"
}


# zookeeper, zookeeper_ensemble: Apache ZooKeeper 3.8 from Debian, our own
# servers (the package's service needs systemd). Debian's libzookeeper-java has
# zookeeper.jar and the jars its manifest names; the `zookeeper` package adds
# only scripts, /etc config and a GUI, and pulls a desktop JRE (305 packages
# against 152). On the class path: zookeeper.jar (its manifest brings the rest)
# and log4j 1.2 with its slf4j binding, both dependencies of the package, so
# that the servers log (without them slf4j drops every line); nothing else from
# /usr/share/java, where other jars break the server.
# Both run with tickTime 500 ms so tests can use short sessions: the servers
# accept session timeouts from 1 s (minSessionTimeout) to 60 s; data is synced
# to the page cache, not to disk (forceSync=no: survives a killed process, not
# a crashed machine); no limit on connections from one address (every test
# connects from 127.0.0.1).
#
# zookeeper: one standalone server, fresh data at every `up`.
#   SHOAL_TEST_ZOOKEEPER=127.0.0.1:PORT
#   SHOAL_TEST_ZOOKEEPER_CTL=/abs/scripts/testenv.sh      a test stops and restarts
#   SHOAL_TEST_ZOOKEEPER_TESTENV_DIR=/abs/.testenv          the server (same port and
#       data, so sessions survive a restart shorter than their timeout) with
#       TESTENV_DIR=$SHOAL_TEST_ZOOKEEPER_TESTENV_DIR $SHOAL_TEST_ZOOKEEPER_CTL stop-service zookeeper
#       TESTENV_DIR=$SHOAL_TEST_ZOOKEEPER_TESTENV_DIR $SHOAL_TEST_ZOOKEEPER_CTL start-service zookeeper
# zookeeper_ensemble: three servers, each with its own client, quorum and
# election port and data; up once every one serves as leader or follower.
#   SHOAL_TEST_ZOOKEEPER_ENSEMBLE=127.0.0.1:A,127.0.0.1:B,127.0.0.1:C
#       node i (0-based) in this list has myid i+1 and is process zookeeper_ensemble-(i+1)
#   SHOAL_TEST_ZOOKEEPER_ENSEMBLE_CTL, SHOAL_TEST_ZOOKEEPER_ENSEMBLE_TESTENV_DIR
#       as above; a test stops one node and starts it again (same ports and data) with
#       ... stop-process zookeeper_ensemble zookeeper_ensemble-2
#       ... start-process zookeeper_ensemble zookeeper_ensemble-2
#   The `srvr` four-letter command (send "srvr" on a client port, read to EOF)
#   answers a line "Mode: leader" on the leader, "Mode: follower" on the others.
# Package internal/zktest wraps all of this for Go tests.
ZK_JAR=/usr/share/java/zookeeper.jar
ZK_CP=$ZK_JAR:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar
ZK_TICK_MS=500

zookeeper_packages() { zk_packages; }
zookeeper_ensemble_packages() { zk_packages; }
zk_packages() {
	# libslf4j-java and liblog4j1.2-java come with it; named because the class path names their jars.
	echo libzookeeper-java libslf4j-java liblog4j1.2-java
	command -v "$JAVA" >/dev/null 2>&1 || echo openjdk-17-jre-headless
}

zookeeper_start() {
	local port dir=$DATADIR/zookeeper
	free_port port
	rm -rf "$dir"
	mkdir -p "$dir/data" || return 1
	zk_write_config "$dir" "$port" || return 1
	set_env SHOAL_TEST_ZOOKEEPER "127.0.0.1:$port"
	set_env SHOAL_TEST_ZOOKEEPER_CTL "$REPO/scripts/testenv.sh"
	set_env SHOAL_TEST_ZOOKEEPER_TESTENV_DIR "$TESTENV_DIR"
	zk_launch zookeeper "$dir" || return 1
	wait_for zookeeper zk_mode_is "$port" standalone
}
zookeeper_check() { zk_mode_is "$(zk_port "$DATADIR/zookeeper")" standalone; }

# zookeeper_restart (start-service): the same port and data as before stop-service.
zookeeper_restart() { zookeeper_start_process zookeeper; }
zookeeper_start_process() {
	local dir=$DATADIR/zookeeper
	[[ $1 == zookeeper ]] || { log "zookeeper has one process, zookeeper; not $1"; return 1; }
	[[ -f $dir/zoo.cfg ]] || { log "zookeeper was never started here (no $dir/zoo.cfg): run up first"; return 1; }
	zk_launch zookeeper "$dir" || return 1
	wait_for zookeeper zk_mode_is "$(zk_port "$dir")" standalone
}

ZK_ENSEMBLE_SIZE=3
zookeeper_ensemble_start() {
	local base=$DATADIR/zookeeper_ensemble n servers=() clients=() addrs=
	rm -rf "$base"
	for ((n = 1; n <= ZK_ENSEMBLE_SIZE; n++)); do
		local client quorum election
		free_port client
		free_port quorum
		free_port election
		clients+=("$client")
		servers+=("server.$n=127.0.0.1:$quorum:$election")
		addrs+=${addrs:+,}127.0.0.1:$client
	done
	for ((n = 1; n <= ZK_ENSEMBLE_SIZE; n++)); do
		mkdir -p "$base/$n/data" || return 1
		echo "$n" >"$base/$n/data/myid" || return 1
		zk_write_config "$base/$n" "${clients[n - 1]}" "${servers[@]}" || return 1
	done
	set_env SHOAL_TEST_ZOOKEEPER_ENSEMBLE "$addrs"
	set_env SHOAL_TEST_ZOOKEEPER_ENSEMBLE_CTL "$REPO/scripts/testenv.sh"
	set_env SHOAL_TEST_ZOOKEEPER_ENSEMBLE_TESTENV_DIR "$TESTENV_DIR"
	zookeeper_ensemble_restart
}

# zookeeper_ensemble_restart (start-service, and the end of start): start every
# node that does not run, all at once (no quorum forms until two run), then
# wait until each serves.
zookeeper_ensemble_restart() {
	local base=$DATADIR/zookeeper_ensemble n
	[[ -f $base/1/zoo.cfg ]] || { log "zookeeper_ensemble was never started here (no $base): run up first"; return 1; }
	for ((n = 1; n <= ZK_ENSEMBLE_SIZE; n++)); do
		pidfile_alive "$PIDDIR/$CUR_SVC/zookeeper_ensemble-$n.pid" && continue
		zk_launch "zookeeper_ensemble-$n" "$base/$n" || return 1
	done
	for ((n = 1; n <= ZK_ENSEMBLE_SIZE; n++)); do
		wait_for "zookeeper_ensemble-$n" zk_mode_is "$(zk_port "$base/$n")" leader follower || return 1
	done
}
zookeeper_ensemble_start_process() {
	local base=$DATADIR/zookeeper_ensemble n=${1#zookeeper_ensemble-}
	[[ $1 == zookeeper_ensemble-* && -f $base/$n/zoo.cfg ]] || {
		log "zookeeper_ensemble has no process $1 (have: zookeeper_ensemble-1 to -$ZK_ENSEMBLE_SIZE)"
		return 1
	}
	zk_launch "$1" "$base/$n" || return 1
	wait_for "$1" zk_mode_is "$(zk_port "$base/$n")" leader follower
}

# zookeeper_ensemble_check: every node serves, and exactly one of them leads.
zookeeper_ensemble_check() {
	local n mode leaders=0
	for ((n = 1; n <= ZK_ENSEMBLE_SIZE; n++)); do
		mode=$(zk_mode "$(zk_port "$DATADIR/zookeeper_ensemble/$n")") || return 1
		case $mode in leader) ((++leaders)) ;; follower) ;; *) return 1 ;; esac
	done
	((leaders == 1))
}

# zk_write_config DIR CLIENT_PORT [server.N=... lines]: DIR/zoo.cfg with data in
# DIR/data, and DIR/log4j.properties. forceSync, preAllocSize and snapCount
# are system properties that zoo.cfg may set (QuorumPeerConfig passes unknown
# keys on as zookeeper.KEY).
zk_write_config() {
	local dir=$1 port=$2
	shift 2
	{
		cat <<-CFG
			tickTime=$ZK_TICK_MS
			minSessionTimeout=$((2 * ZK_TICK_MS))
			maxSessionTimeout=60000
			initLimit=20
			syncLimit=10
			dataDir=$dir/data
			clientPort=$port
			clientPortAddress=127.0.0.1
			maxClientCnxns=0
			admin.enableServer=false
			4lw.commands.whitelist=ruok,stat,srvr
			forceSync=no
			preAllocSize=4096
		CFG
		if (($#)); then printf '%s\n' "$@"; fi
	} >"$dir/zoo.cfg" || return 1
	cat >"$dir/log4j.properties" <<-'LOG4J'
		log4j.rootLogger=INFO, CONSOLE
		log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
		log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
		log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1}: %m%n
	LOG4J
}

# zk_launch PROC DIR: start a server on DIR/zoo.cfg. A small heap and the
# serial collector with C1 only: four of these share two cores with Kafka and
# the tests, and the tests need milliseconds, not throughput.
zk_launch() {
	[[ -f $ZK_JAR ]] || { log "$ZK_JAR is missing: is libzookeeper-java installed?"; return 1; }
	spawn "$1" "$JAVA" -Xms16m -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData \
		-XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
		"-Dlog4j.configuration=file:$2/log4j.properties" -cp "$ZK_CP" \
		org.apache.zookeeper.server.quorum.QuorumPeerMain "$2/zoo.cfg"
}

zk_port() { sed -n 's/^clientPort=//p' "$1/zoo.cfg"; }

# zk_mode PORT: the Mode line of the `srvr` answer of 127.0.0.1:PORT
# (standalone, leader, follower); fails while the server does not serve.
zk_mode() {
	local out
	# shellcheck disable=SC2016 # expanded by the inner bash
	out=$(timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1; printf srvr >&3; cat <&3' _ "$1" 2>/dev/null) || return 1
	out=$(sed -n 's/^Mode: //p' <<<"$out")
	[[ -n $out ]] && echo "$out"
}

# zk_mode_is PORT MODE...: the server on PORT serves in one of these modes.
zk_mode_is() {
	local mode m
	mode=$(zk_mode "$1") || return 1
	shift
	for m; do [[ $mode == "$m" ]] && return 0; done
	return 1
}

# ---------------------------------------------------------------------------
# Helpers for service blocks
# ---------------------------------------------------------------------------

# free_port VAR sets VAR to a TCP port that nothing on 127.0.0.1 is bound to and that
# this run has not handed out before (not `$(free_port)`: the subshell would forget it).
# It picks below the kernel's ephemeral range, so the client side of some connection (a
# Go test's, say) cannot take it between now and the service's bind, and checks it by
# binding to it.
HANDED_OUT=" "
free_port() {
	local _fp_lo _fp_hi _fp_p _fp_tries=0
	read -r _fp_lo _fp_hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || { _fp_lo=32768 _fp_hi=60999; }
	# [10000, lo) when the ephemeral range leaves room for it, otherwise above it.
	local _fp_base=10000 _fp_span=$((_fp_lo - 10000))
	if ((_fp_span < 1000)); then _fp_base=$((_fp_hi + 1)) _fp_span=$((65535 - _fp_hi)); fi
	while ((_fp_tries++ < 200)); do
		_fp_p=$((_fp_base + (RANDOM * 32768 + RANDOM) % _fp_span))
		[[ $HANDED_OUT == *" $_fp_p "* ]] && continue
		if port_bindable "$_fp_p"; then
			HANDED_OUT+="$_fp_p "
			printf -v "$1" '%s' "$_fp_p"
			return 0
		fi
	done
	die "no free port found in [$_fp_base, $((_fp_base + _fp_span)))"
}

# port_bindable PORT: whether 127.0.0.1:PORT can be bound now. Linux refuses the bind
# when anything holds the port on 127.0.0.1 or on the wildcard address, including a
# connection in TIME_WAIT (no SO_REUSEADDR here), which is the conservative answer.
PYTHON=$(command -v /usr/bin/python3 || command -v python3 || true)
port_bindable() {
	if [[ -n $PYTHON ]]; then
		"$PYTHON" - "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
	else
		# No python3: nothing may listen on or be connected from the port.
		if ss -Htan "( sport = :$1 )" 2>/dev/null | grep -q .; then return 1; fi
	fi
}

# spawn PROC CMD...: start CMD in the background as process PROC of the current service,
# with its output in logs/PROC.log and its PID in pids/SERVICE/PROC.pid. The child keeps no
# descriptor of ours: none of the caller's pipes (make's, CI's) stay open because of it,
# and it does not hold our lock.
spawn() {
	local proc=$1
	shift
	mkdir -p "$PIDDIR/$CUR_SVC" "$LOGDIR"
	local logf=$LOGDIR/$proc.log
	printf '=== %s start %s: %s\n' "$(date -u +%FT%TZ)" "$proc" "$*" >>"$logf"
	(
		for fd in "/proc/$BASHPID/fd"/*; do
			fd=${fd##*/}
			if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
		done
		exec "$@" </dev/null >>"$logf" 2>&1
	) &
	local pid=$!
	# The start time (field 22 of /proc/PID/stat) tells this process from a later one
	# that reuses its PID.
	local st
	st=$(proc_starttime "$pid") || st=0
	echo "$pid $st" >"$PIDDIR/$CUR_SVC/$proc.pid"
	LAST_PROC=$proc
}

# wait_for PROC CHECK...: run CHECK until it succeeds, up to TESTENV_START_TIMEOUT seconds;
# fail at once if PROC's process has exited.
wait_for() {
	local proc=$1
	shift
	local deadline=$((SECONDS + START_TIMEOUT)) delay=0.05
	while :; do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		if ! pidfile_alive "$PIDDIR/$CUR_SVC/$proc.pid"; then
			log "$proc exited before it answered"
			return 1
		fi
		if ((SECONDS >= deadline)); then
			log "$proc did not answer within ${START_TIMEOUT}s"
			return 1
		fi
		sleep "$delay"
		# Back off to at most half a second between polls.
		case $delay in 0.05) delay=0.1 ;; 0.1) delay=0.2 ;; *) delay=0.5 ;; esac
	done
}

# http_ok URL: a 2xx answer within two seconds.
http_ok() { curl -fsS -o /dev/null --max-time 2 "$1"; }

# tcp_ok HOST PORT: something accepts a connection.
tcp_ok() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# set_env VAR VALUE: record a variable for the current service.
set_env() {
	mkdir -p "$ENVDIR"
	local f=$ENVDIR/$CUR_SVC
	touch "$f"
	grep -v "^$1=" "$f" >"$f.tmp" || true
	printf '%s=%s\n' "$1" "$2" >>"$f.tmp"
	mv "$f.tmp" "$f"
}

# get_env VAR: a variable recorded by the current service.
get_env() {
	local f=$ENVDIR/$CUR_SVC
	[[ -f $f ]] || return 1
	sed -n "s/^$1=//p" "$f" | tail -n1
}

# ---------------------------------------------------------------------------
# Packages
# ---------------------------------------------------------------------------

APT_UPDATED=
as_root() {
	if [[ $(id -u) == 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo -n "$@"
	else
		die "need root to run: $*"
	fi
}

pkg_installed() {
	[[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# ensure_packages PKG...: apt-get install the ones not installed; `apt-get update` only
# when something is missing, and at most once per run.
ensure_packages() {
	local missing=() p
	for p in "$@"; do
		pkg_installed "$p" || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	command -v apt-get >/dev/null 2>&1 || die "missing packages ${missing[*]} and no apt-get to install them"
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Where no systemd runs (CI, containers), a package's postinst starts its daemon
	# through its init.d script: a node_exporter on 0.0.0.0:9100, say. Tests start their
	# own on loopback, so forbid that for the length of the install, the way Docker
	# images do with this same file (most already ship it).
	local policy=/usr/sbin/policy-rc.d made_policy=
	if [[ ! -d /run/systemd/system && ! -e $policy ]]; then
		as_root sh -c "printf '#!/bin/sh\\nexit 101\\n' >$policy && chmod 755 $policy" && made_policy=1
	fi
	local rc=0
	if [[ -z $APT_UPDATED ]]; then
		as_root apt-get -o DPkg::Lock::Timeout=120 update -q || rc=$?
		APT_UPDATED=1
	fi
	if ((rc == 0)); then
		as_root apt-get -o DPkg::Lock::Timeout=120 install -y -q --no-install-recommends "${missing[@]}" </dev/null || rc=$?
	fi
	[[ -n $made_policy ]] && as_root rm -f "$policy"
	((rc == 0)) || die "apt-get failed ($rc) installing ${missing[*]}"
}

# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------

proc_starttime() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	# Fields after the ")" that closes the command name; starttime is field 22 overall.
	local -a fields
	read -ra fields <<<"${stat##*) }"
	echo "${fields[19]}"
}

proc_state() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	echo "${stat%% *}"
}

# pidfile_alive FILE: the recorded process still runs (and is the one we started; a
# zombie that nobody has reaped yet counts as gone).
pidfile_alive() {
	local pid st cur state
	[[ -f $1 ]] || return 1
	read -r pid st <"$1" || return 1
	cur=$(proc_starttime "$pid") || return 1
	[[ $st == 0 || $cur == "$st" ]] || return 1
	state=$(proc_state "$pid") || return 1
	[[ $state != Z && $state != X ]]
}

# stop_pidfile FILE: TERM the process, KILL it after 10 s, wait until it is gone.
stop_pidfile() {
	local f=$1 pid st name
	name=$(basename "$f" .pid)
	if pidfile_alive "$f"; then
		read -r pid st <"$f"
		log "stopping $name (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		local deadline=$((SECONDS + 10))
		while pidfile_alive "$f" && ((SECONDS < deadline)); do sleep 0.1; done
		if pidfile_alive "$f"; then
			log "$name ignored SIGTERM; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			deadline=$((SECONDS + 5))
			while pidfile_alive "$f" && ((SECONDS < deadline)); do sleep 0.1; done
		fi
		# Reap it if it is our own child (only when `up` fails half-way).
		wait "$pid" 2>/dev/null || true
		if pidfile_alive "$f"; then
			log "warning: $name (pid $pid) is still running"
			return 1
		fi
	fi
	rm -f "$f"
}

stop_service() {
	local svc=$1 f rc=0
	shopt -s nullglob
	for f in "$PIDDIR/$svc"/*.pid; do stop_pidfile "$f" || rc=1; done
	shopt -u nullglob
	rmdir "$PIDDIR/$svc" 2>/dev/null || true
	rm -f "$ENVDIR/$svc"
	return $rc
}

service_alive() {
	local svc=$1 f any=
	shopt -s nullglob
	for f in "$PIDDIR/$svc"/*.pid; do
		any=1
		pidfile_alive "$f" || { shopt -u nullglob; return 1; }
	done
	shopt -u nullglob
	[[ -n $any && -f $ENVDIR/$svc ]]
}

# print_log_tail PROC [N]: the last N lines PROC wrote since its latest start.
print_log_tail() {
	local proc=$1 n=${2:-40}
	[[ -f $LOGDIR/$proc.log ]] || return 0
	log "last lines (up to $n) of $LOGDIR/$proc.log:"
	awk '/^=== .* start /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' "$LOGDIR/$proc.log" |
		tail -n "$n" | sed 's/^/    /' >&2
}

write_envfile() {
	mkdir -p "$ENVDIR"
	local tmp=$ENVFILE.tmp svc
	: >"$tmp"
	for svc in "${SERVICES[@]}"; do
		[[ -f $ENVDIR/$svc ]] && cat "$ENVDIR/$svc" >>"$tmp"
	done
	mv "$tmp" "$ENVFILE"
}

# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------

is_service() {
	local s
	for s in "${SERVICES[@]}"; do [[ $s == "$1" ]] && return 0; done
	return 1
}

lock() {
	mkdir -p "$TESTENV_DIR"
	exec 9>"$TESTENV_DIR/lock"
	if command -v flock >/dev/null 2>&1; then
		flock -w 120 9 || die "another testenv.sh holds $TESTENV_DIR/lock"
	fi
}

cmd_up() {
	local want=("$@") svc
	((${#want[@]})) || want=("${SERVICES[@]}")
	for svc in "${want[@]}"; do is_service "$svc" || die "unknown service $svc (have: ${SERVICES[*]})"; done
	lock
	mkdir -p "$PIDDIR" "$LOGDIR" "$ENVDIR" "$DATADIR"

	# Tools this script itself uses, then each service's packages.
	local pkgs=() p
	command -v curl >/dev/null 2>&1 || pkgs+=(curl)
	[[ -n $PYTHON ]] || command -v ss >/dev/null 2>&1 || pkgs+=(iproute2)
	for svc in "${want[@]}"; do
		for p in $("${svc}_packages"); do pkgs+=("$p"); done
	done
	((${#pkgs[@]})) && ensure_packages "${pkgs[@]}"

	for svc in "${want[@]}"; do
		CUR_SVC=$svc
		if service_alive "$svc"; then
			if ! declare -F "${svc}_check" >/dev/null || "${svc}_check" >/dev/null 2>&1; then
				log "$svc already running"
				continue
			fi
			log "$svc is running but unhealthy; restarting"
		fi
		stop_service "$svc" || die "could not stop the old $svc"
		mkdir -p "$DATADIR/$svc"
		local attempt ok=
		# A port can still be taken between free_port and the service's bind; retry.
		for attempt in 1 2 3; do
			LAST_PROC=$svc
			local t0=$SECONDS
			if "${svc}_start"; then
				ok=1
				log "$svc up in $((SECONDS - t0))s: $(tr '\n' ' ' <"$ENVDIR/$svc")"
				break
			fi
			log "$svc failed to start (attempt $attempt)"
			print_log_tail "$LAST_PROC"
			stop_service "$svc" || true
		done
		[[ -n $ok ]] || {
			write_envfile
			die "$svc did not start; logs in $LOGDIR"
		}
	done
	write_envfile
	log "env written to $ENVFILE"
}

cmd_down() {
	[[ -d $TESTENV_DIR ]] || return 0
	lock
	local rc=0 d svc
	shopt -s nullglob
	# Every pid directory, not only the services known today: a renamed or removed
	# service's processes still get stopped.
	for d in "$PIDDIR"/*/; do
		svc=$(basename "$d")
		stop_service "$svc" || rc=1
	done
	shopt -u nullglob
	rm -f "$ENVFILE"
	rm -rf "$DATADIR"
	return $rc
}

# cmd_run [SERVICE...] -- CMD...: up, run CMD with the services' variables in its
# environment, down (always, also on failure or a signal); exit with CMD's status.
# Unlike `up` then `down` from two processes, the services stay children of this
# process, so `down` also reaps them: where PID 1 does not reap orphans (some
# containers' init), separate `up`/`down` calls leave <defunct> entries behind.
cmd_run() {
	local svcs=()
	while (($#)) && [[ $1 != -- ]]; do svcs+=("$1"); shift; done
	[[ ${1:-} == -- ]] && shift
	(($#)) || die "usage: $0 run [SERVICE...] -- CMD..."
	trap 'rc=$?; trap - EXIT; cmd_down || log "warning: down failed"; exit $rc' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	cmd_up "${svcs[@]}"
	exec 9>&- # release the lock while CMD runs; down takes it again
	set -a
	# shellcheck disable=SC1090
	. "$ENVFILE"
	set +a
	local rc=0
	"$@" || rc=$?
	exit $rc
}

# cmd_stop_service SERVICE: stop its processes (TERM, then KILL after 10 s), and keep
# everything else: its variables stay in env, its data in data/SERVICE.
cmd_stop_service() {
	local svc=${1:-}
	is_service "$svc" || die "usage: $0 stop-service SERVICE (have: ${SERVICES[*]})"
	lock
	local f rc=0
	shopt -s nullglob
	for f in "$PIDDIR/$svc"/*.pid; do stop_pidfile "$f" || rc=1; done
	shopt -u nullglob
	return $rc
}

# cmd_start_service SERVICE: after stop-service, start it again on the same ports
# with the same data, and wait until it answers; a no-op if it runs.
cmd_start_service() {
	local svc=${1:-}
	is_service "$svc" || die "usage: $0 start-service SERVICE (have: ${SERVICES[*]})"
	declare -F "${svc}_restart" >/dev/null || die "$svc cannot be restarted in place (no ${svc}_restart)"
	lock
	[[ -f $ENVDIR/$svc ]] || die "$svc is not up: run $0 up first"
	CUR_SVC=$svc
	if service_alive "$svc"; then
		log "$svc already running"
		return 0
	fi
	local t0=$SECONDS
	LAST_PROC=$svc
	if ! "${svc}_restart"; then
		print_log_tail "$LAST_PROC"
		die "$svc did not start again; logs in $LOGDIR"
	fi
	log "$svc up again in $((SECONDS - t0))s"
}

# cmd_stop_process SERVICE PROC: stop one process of a running service (TERM, then
# KILL after 10 s), keeping its ports, data and variables. Its pid file stays, so
# `status` shows it gone, start-service starts it again, and `up` sees the service
# as broken and starts it afresh.
cmd_stop_process() {
	local svc=${1:-} proc=${2:-}
	if ! is_service "$svc" || [[ -z $proc ]]; then die "usage: $0 stop-process SERVICE PROC (have: ${SERVICES[*]})"; fi
	lock
	local f=$PIDDIR/$svc/$proc.pid line
	[[ -f $f ]] || die "$svc has no process $proc (have: $(proc_names "$svc"))"
	line=$(cat "$f")
	stop_pidfile "$f" || return 1
	echo "$line" >"$f"
}

# cmd_start_process SERVICE PROC: after stop-process, start that process again on
# the same ports with the same data, and wait until it serves; a no-op if it runs.
# (services with a SERVICE_start_process function: zookeeper, zookeeper_ensemble)
cmd_start_process() {
	local svc=${1:-} proc=${2:-}
	if ! is_service "$svc" || [[ -z $proc ]]; then die "usage: $0 start-process SERVICE PROC (have: ${SERVICES[*]})"; fi
	declare -F "${svc}_start_process" >/dev/null || die "$svc cannot restart single processes (no ${svc}_start_process)"
	lock
	[[ -f $ENVDIR/$svc ]] || die "$svc is not up: run $0 up first"
	CUR_SVC=$svc
	if pidfile_alive "$PIDDIR/$svc/$proc.pid"; then
		log "$svc/$proc already running"
		return 0
	fi
	local t0=$SECONDS
	LAST_PROC=$proc
	if ! "${svc}_start_process" "$proc"; then
		print_log_tail "$LAST_PROC"
		die "$svc/$proc did not start again; logs in $LOGDIR"
	fi
	log "$svc/$proc up again in $((SECONDS - t0))s"
}

proc_names() {
	local f names=()
	shopt -s nullglob
	for f in "$PIDDIR/$1"/*.pid; do names+=("$(basename "$f" .pid)"); done
	shopt -u nullglob
	echo "${names[*]:-none}"
}

cmd_env() {
	[[ -f $ENVFILE ]] || return 0
	local line
	while IFS= read -r line; do
		[[ -n $line ]] && printf 'export %s=%q\n' "${line%%=*}" "${line#*=}"
	done <"$ENVFILE"
}

cmd_status() {
	local f pid st
	shopt -s nullglob
	for f in "$PIDDIR"/*/*.pid; do
		read -r pid st <"$f"
		if pidfile_alive "$f"; then
			echo "$(basename "$(dirname "$f")")/$(basename "$f" .pid) pid $pid running"
		else
			echo "$(basename "$(dirname "$f")")/$(basename "$f" .pid) pid $pid gone"
		fi
	done
	shopt -u nullglob
	[[ -f $ENVFILE ]] && cat "$ENVFILE"
	return 0
}

case ${1:-} in
up) shift; cmd_up "$@" ;;
down) cmd_down ;;
run) shift; cmd_run "$@" ;;
env) cmd_env ;;
status) cmd_status ;;
list) printf '%s\n' "${SERVICES[@]}" ;;
stop-service) shift; cmd_stop_service "$@" ;;
start-service) shift; cmd_start_service "$@" ;;
stop-process) shift; cmd_stop_process "$@" ;;
start-process) shift; cmd_start_process "$@" ;;
*)
	echo "usage: $0 up [SERVICE...] | down | run [SERVICE...] -- CMD... | env | status | list | stop-service SERVICE | start-service SERVICE | stop-process SERVICE PROC | start-process SERVICE PROC" >&2
	exit 2
	;;
esac
