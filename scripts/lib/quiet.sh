# The benchmark scripts' wait for a quiet machine (source it; it defines functions only).
# A shared machine skews every figure: each run starts once the CPUs are at least 90 % idle.

# CPU busy percentage over the next 2 s, from /proc/stat.
cpu_busy() {
  local a b c d e f g h t1 i1 t2 i2
  read -r _ a b c d e f g h _ </proc/stat; t1=$((a + b + c + d + e + f + g + h)); i1=$((d + e))
  sleep 2
  read -r _ a b c d e f g h _ </proc/stat; t2=$((a + b + c + d + e + f + g + h)); i2=$((d + e))
  echo $((100 * ((t2 - t1) - (i2 - i1)) / (t2 - t1)))
}

# wait_quiet MAX_SECONDS [WHO]: waits until the CPUs are ≥ 90 % idle, at most MAX_SECONDS
# (0 = do not wait); then runs anyway, saying so.
wait_quiet() {
  local max=$1 who=${2:-bench} busy waited=0
  ((max > 0)) || return 0
  while ((waited < max)); do
    busy=$(cpu_busy); waited=$((waited + 2))
    ((busy <= 10)) && return 0
    echo "$who: waiting for a quiet machine (CPU busy $busy %)" >&2
  done
  echo "$who: the machine is still busy; running anyway (the reports record the load average)" >&2
}
