#!/usr/bin/env bash
# Postfix and imxp side by side, alternately, on this machine:
#
#   smtp-source → postfix (a throwaway instance on loopback) → smtp-sink
#   imxp-bench relay: senders → imxpd a.test → imxpd b.test → sink
#
# the same number of messages of the same size from the same number of
# concurrent senders, persistent sessions on both. Prints each round and
# the ratio of the delivered rates (imxp ÷ Postfix). The machine is noisy:
# only ratios from one run mean something.
#
# Needs root (Postfix's master runs as root) and the postfix package
# (smtp-source and smtp-sink come with it): --install installs it with
# debconf "No configuration", so no system instance is set up or started.
# The Postfix instance lives in a temporary directory (its own main.cf,
# master.cf, queue and log) and is stopped and removed at the end;
# /etc/postfix is not touched.
set -euo pipefail

usage() {
    cat <<USAGE
usage: $0 [--install] [--count N] [--size OCTETS] [--senders N] [--rounds N]
          [--imxp-bench PATH] [--postfix-only | --imxp-only]
  --count     messages per round (default 20000)
  --size      octets per message (default 500)
  --senders   concurrent senders / SMTP sessions (default 50)
  --rounds    rounds of Postfix then imxp (default 3)
  --install   install the postfix package first if it is missing
USAGE
}

count=20000 size=500 senders=50 rounds=3 install=0 which=both
root=$(cd "$(dirname "$0")/.." && pwd)
bench="$root/target/release/imxp-bench"
while (($#)); do
    case "$1" in
        --count) count=$2; shift 2 ;;
        --size) size=$2; shift 2 ;;
        --senders) senders=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --imxp-bench) bench=$2; shift 2 ;;
        --install) install=1; shift ;;
        --postfix-only) which=postfix; shift ;;
        --imxp-only) which=imxp; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
for n in "$count" "$size" "$senders" "$rounds"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "not a positive number: $n" >&2; exit 2; }
done

if [[ $which != imxp ]]; then
    [[ $(id -u) -eq 0 ]] || { echo "run as root: Postfix's master must start as root" >&2; exit 1; }
    if ! command -v smtp-source >/dev/null && [[ ! -x /usr/sbin/smtp-source ]]; then
        if ((install)); then
            echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postfix >/dev/null
        else
            echo "smtp-source not found: install postfix (or pass --install)" >&2
            exit 1
        fi
    fi
fi
if [[ $which != postfix && ! -x $bench ]]; then
    echo "no $bench: cargo build --release -p imxp-relay -p imxp-bench" >&2
    exit 1
fi
export PATH="/usr/sbin:$PATH"

work=$(mktemp -d /var/tmp/imxp-postfix.XXXXXX)
# Postfix's daemons (user postfix) walk into it; maillog_file must be under
# /var (maillog_file_prefixes).
chmod 755 "$work"
sink_pid=""
cleanup() {
    if [[ -f $work/conf/main.cf ]]; then
        postfix -c "$work/conf" stop >/dev/null 2>&1 || true
    fi
    if [[ -n $sink_pid ]]; then
        kill "$sink_pid" 2>/dev/null || true
        wait "$sink_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# A loopback port nothing listens on.
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 30000))
        (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null || { echo "$port"; return; }
    done
}

# CPU jiffies of the Postfix instance: its master's own and reaped
# children's (utime, stime, cutime, cstime) plus its live children's
# (utime, stime). Over a run the difference counts every daemon's work,
# including daemons born or ended meanwhile; smtp-source and smtp-sink are
# not counted (as imxp-bench's relay figures leave out its driver). Other
# load on the machine is not counted either.
postfix_jiffies() {
    local master total=0 pid stat rest f
    master=$(cat "$work/queue/pid/master.pid" 2>/dev/null | tr -d ' ')
    [[ -n $master ]] || { echo 0; return; }
    read -r stat <"/proc/$master/stat"
    rest=${stat##*) }
    read -ra f <<<"$rest"
    total=$((f[11] + f[12] + f[13] + f[14]))
    for pid in $(pgrep -P "$master"); do
        read -r stat <"/proc/$pid/stat" 2>/dev/null || continue
        rest=${stat##*) }
        read -ra f <<<"$rest"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

now() { date +%s.%N; }

# A Postfix instance that relays everything from 127.0.0.1 to the sink.
setup_postfix() {
    smtpd_port=$(free_port)
    sink_port=$(free_port)
    mkdir -p "$work/conf" "$work/queue" "$work/data"
    chown postfix "$work/data"
    cat >"$work/conf/main.cf" <<MAIN
# Throwaway instance written by imxp's bench/compare-postfix.sh.
compatibility_level = 3.6
queue_directory = $work/queue
data_directory = $work/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.postfix.test
mydomain = postfix.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:$sink_port
# Persistent sessions to the next hop, as imxp pools its mesh sessions.
smtp_connection_cache_on_demand = yes
smtp_connection_cache_destinations = [127.0.0.1]:$sink_port
default_destination_concurrency_limit = $senders
default_process_limit = $((senders * 2 + 20))
maillog_file = $work/maillog
smtputf8_enable = no
biff = no
MAIN
    cat >"$work/conf/master.cf" <<MASTER
127.0.0.1:$smtpd_port inet n - n - - smtpd
pickup     unix  n - n 60 1 pickup
cleanup    unix  n - n -  0 cleanup
qmgr       unix  n - n 300 1 qmgr
rewrite    unix  - - n -  - trivial-rewrite
bounce     unix  - - n -  0 bounce
defer      unix  - - n -  0 bounce
trace      unix  - - n -  0 bounce
verify     unix  - - n -  1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -  - proxymap
proxywrite unix  - - n -  1 proxymap
smtp       unix  - - n -  - smtp
relay      unix  - - n -  - smtp
showq      unix  n - n -  - showq
error      unix  - - n -  - error
retry      unix  - - n -  - error
discard    unix  - - n -  - discard
anvil      unix  - - n -  1 anvil
scache     unix  - - n -  1 scache
postlog    unix-dgram n - n - 1 postlogd
MASTER
    postfix -c "$work/conf" check
    smtp-sink -u postfix 127.0.0.1:"$sink_port" 1024 &
    sink_pid=$!
    postfix -c "$work/conf" start >"$work/start.log" 2>&1 || { cat "$work/start.log" >&2; exit 1; }
    # Ready when the smtpd port answers.
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/"$smtpd_port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "postfix did not listen on 127.0.0.1:$smtpd_port; log:" >&2
    cat "$work/maillog" >&2 || true
    exit 1
}

sent_count() { grep -c ' status=sent ' "$work/maillog" 2>/dev/null || true; }

# One Postfix round: prints "delivered/s accepted/s cpu_ms_per_message".
postfix_round() {
    local before_sent cpu0 t0 t1 t2 cpu1 target
    before_sent=$(sent_count)
    target=$((before_sent + count))
    cpu0=$(postfix_jiffies)
    t0=$(now)
    smtp-source -d -s "$senders" -l "$size" -m "$count" \
        -f bench@source.test -t sink@sink.test 127.0.0.1:"$smtpd_port"
    t1=$(now)
    local deadline=$((SECONDS + 600))
    while (($(sent_count) < target)); do
        ((SECONDS < deadline)) || { echo "postfix: only $(($(sent_count) - before_sent)) of $count delivered" >&2; exit 1; }
        sleep 0.05
    done
    t2=$(now)
    cpu1=$(postfix_jiffies)
    awk -v n="$count" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v c="$((cpu1 - cpu0))" \
        -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%.0f %.0f %.3f\n", n/(t2-t0), n/(t1-t0), c*1000/hz/n }'
}

# One imxp round: prints "delivered/s accepted/s relay_cpu_ms_per_datagram p99_ms".
imxp_round() {
    local json
    json=$("$bench" relay --json --count "$count" --size "$size" --senders "$senders")
    # The fields are numbers in one JSON object (see bench/README.md).
    grep -o '"[a-z0-9_]*":[0-9.e+-]*' <<<"$json" | awk -F: '
        $1 == "\"delivered_per_s\"" { d = $2 }
        $1 == "\"accepted_per_s\"" { a = $2 }
        $1 == "\"cpu_us_per_datagram\"" { c += $2 }
        $1 == "\"p99\"" { p = $2 }
        END { printf "%.0f %.0f %.3f %.1f\n", d, a, c / 1000, p / 1000 }'
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "load: $count messages of $size octets, $senders concurrent senders, persistent sessions"
[[ $which != imxp ]] && setup_postfix
printf '%-6s %-44s %12s %12s %16s\n' round system delivered/s accepted/s "CPU ms/message"
ratios=()
for round in $(seq "$rounds"); do
    p="" i=""
    if [[ $which != imxp ]]; then
        read -r p_del p_acc p_cpu < <(postfix_round)
        printf '%-6s %-44s %12s %12s %16s\n' "$round" "Postfix (source→postfix→sink, 1 hop)" \
            "$p_del" "$p_acc" "$p_cpu (postfix)"
        p=$p_del
    fi
    if [[ $which != postfix ]]; then
        read -r i_del i_acc i_cpu i_p99 < <(imxp_round)
        printf '%-6s %-44s %12s %12s %16s\n' "$round" "imxp (senders→a→b→sink, 2 hops, TLS)" \
            "$i_del" "$i_acc" "$i_cpu (relays)"
        i=$i_del
    fi
    if [[ -n $p && -n $i ]]; then
        ratio=$(awk -v i="$i" -v p="$p" 'BEGIN { printf "%.1f", i/p }')
        ratios+=("$ratio")
        echo "       ratio imxp/Postfix (delivered/s): $ratio×"
    fi
done
if ((${#ratios[@]})); then
    echo "ratios: ${ratios[*]} (median $(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')×)"
fi
