# dalli_ops.rb - a fixed sequence of Dalli (Ruby, binary protocol) calls
# against HOST:PORT, one line per outcome, for test_clients.py to compare
# between memcached and bitcached. Values that differ between servers by
# design (cas numbers, stats figures) are printed as their shape only.
require "dalli"

host = ARGV[0]
$n = 0
def out(what, val)
  $n += 1
  puts "#{$n} #{what}: #{val.inspect}"
end

def attempt(what)
  out(what, yield)
rescue StandardError => e
  out(what, "raised #{e.class}")
end

# Quiet logs, no namespace; compression off so sizes are exact; a second
# client with compression on checks the flag round trip.
Dalli.logger.level = Logger::ERROR
dc = Dalli::Client.new(host, compress: false, socket_timeout: 2, socket_max_failures: 1)
dz = Dalli::Client.new(host, compress: true, compression_min_size: 100)

attempt("flush") { dc.flush.is_a?(Array) }
attempt("set") { dc.set("a", "one") != false }
attempt("get") { dc.get("a") }
attempt("get missing") { dc.get("nope") }
attempt("set raw") { dc.set("r", "raw-bytes", 0, raw: true) != false }
attempt("get raw") { dc.get("r", raw: true) }
attempt("set object") { dc.set("o", { "x" => [1, 2, 3], "y" => nil }) != false }
attempt("get object") { dc.get("o") }
attempt("add existing") { dc.add("a", "two") }
attempt("add new") { dc.add("b", "two") != false }
attempt("replace missing") { dc.replace("nope", "x") }
attempt("replace") { dc.replace("b", "three") != false }
attempt("get b") { dc.get("b") }
attempt("append") { dc.set("s", "mid", 0, raw: true) && dc.append("s", "-end") }
attempt("prepend") { dc.prepend("s", "start-") }
attempt("get s") { dc.get("s", raw: true) }
attempt("append missing") { dc.append("nope", "x") }
attempt("incr missing") { dc.incr("ctr", 1) }
attempt("incr with initial") { dc.incr("ctr", 5, 0, 10) }
attempt("incr") { dc.incr("ctr", 5) }
attempt("decr") { dc.decr("ctr", 100) }
attempt("incr wrap") { dc.set("w", "18446744073709551615", 0, raw: true) && dc.incr("w", 2) }
attempt("incr non-numeric") { dc.incr("a", 1) }
attempt("get_multi") { dc.get_multi("a", "b", "nope", "s").sort.to_h }
attempt("get_multi many") do
  keys = (1..300).map { |i| "m#{i}" }
  dc.multi { keys.each { |k| dc.set(k, k * 3) } }
  h = dc.get_multi(keys)
  [h.size, h.all? { |k, v| v == k * 3 }]
end
attempt("cas") { dc.cas("a") { |v| v + "+cas" }.is_a?(Integer) }
attempt("get after cas") { dc.get("a") }
attempt("cas missing") { dc.cas("nope") { |v| v } }
attempt("gets shape") do
  v, cas = dc.get_cas("a")
  [v, cas.is_a?(Integer) && cas > 0]
end
attempt("set_cas stale") do
  _, cas = dc.get_cas("a")
  dc.set("a", "newer")
  dc.set_cas("a", "stale", cas)
end
attempt("set_cas current") do
  _, cas = dc.get_cas("a")
  dc.set_cas("a", "current", cas).is_a?(Integer)
end
attempt("get a") { dc.get("a") }
attempt("touch") { dc.touch("a", 100) }
attempt("touch missing") { dc.touch("nope", 100) }
attempt("gat") { dc.gat("a", 200) }
attempt("gat missing") { dc.gat("nope", 200) }
attempt("delete") { dc.delete("b") }
attempt("delete missing") { dc.delete("b") }
attempt("get deleted") { dc.get("b") }
attempt("delete_cas stale") do
  _, cas = dc.get_cas("a")
  dc.set("a", "again")
  dc.delete_cas("a", cas)
end
attempt("fetch miss") { dc.fetch("f") { "computed" } }
attempt("fetch hit") { dc.fetch("f") { "not again" } }
attempt("expiry") do
  dc.set("e", "soon", 1)
  sleep 2.1
  dc.get("e")
end
attempt("large value") do
  big = "x" * (900 * 1024)
  dc.set("big", big, 0, raw: true) && dc.get("big", raw: true) == big
end
attempt("too large") { dc.set("huge", "y" * (2 * 1024 * 1024), 0, raw: true) }
attempt("compressed") do
  v = "compress me " * 200
  dz.set("z", v) && dz.get("z") == v && dc.get("z") == v
end
attempt("key with spaces") { dc.set("has space", "v") && dc.get("has space") }
attempt("binary key") { dc.set("k\u00e9y", "v") && dc.get("k\u00e9y") }
attempt("quiet multi set") do
  dc.multi { (1..50).each { |i| dc.set("q#{i}", i) } }
  dc.get_multi((1..50).map { |i| "q#{i}" }).values.sum
end
attempt("add with ttl") { dc.add("at", "ttl", 1) != false }
attempt("replace with ttl") { dc.set("rt", "old") && dc.replace("rt", "ttl", 1) != false }
attempt("add/replace ttl expiry") do
  sleep 2.1
  [dc.get("at"), dc.get("rt")]
end
attempt("incr with default") { dc.incr("dflt", 1, nil, 42) }
attempt("decr with default") { dc.decr("ddflt", 1, nil, 7) }
attempt("decr with default ttl") { dc.decr("dttl", 1, 100, 9) }
attempt("incr default existing") { dc.incr("dflt", 1, nil, 42) }
attempt("incr missing no default") { dc.incr("nodflt", 1) }
attempt("cas! missing") { dc.cas!("casbang") { |v| "from #{v.inspect}" }.is_a?(Integer) }
attempt("get cas!") { dc.get("casbang") }
attempt("cas with ttl") { dc.cas("casbang", 100) { |v| v + "+" }.is_a?(Integer) }
attempt("replace_cas stale") do
  _, cas = dc.get_cas("casbang")
  dc.set("casbang", "moved")
  dc.replace_cas("casbang", "stale", cas)
end
attempt("replace_cas current") do
  _, cas = dc.get_cas("casbang")
  dc.replace_cas("casbang", "current", cas).is_a?(Integer)
end
attempt("replace_cas missing") { dc.replace_cas("nope", "x", 12_345) }
attempt("delete_cas current") do
  _, cas = dc.get_cas("casbang")
  dc.delete_cas("casbang", cas)
end
attempt("get_cas missing") { dc.get_cas("nope") }
attempt("get_multi_cas shape") do
  dc.get_multi_cas("a", "nope", "f").map { |k, (v, cas)| [k, v, cas.is_a?(Integer) && cas > 0] }.sort
end
attempt("fetch with ttl") { dc.fetch("ft", 1) { "ttl" } }
attempt("fetch nil") { dc.fetch("fnil") { nil } }
attempt("fetch raw") { dc.fetch("fraw", nil, raw: true) { "rawf" } && dc.get("fraw", raw: true) }
attempt("gat ttl expiry") do
  dc.set("g", "gat me")
  dc.gat("g", 1)
  sleep 2.1
  [dc.get("g"), dc.get("ft")]
end
attempt("touch with negative ttl") { dc.set("tn", "x") && dc.touch("tn", -1) && dc.get("tn") }
# Only the calls Dalli 3.0.6 makes quiet (set, add, replace, delete): a
# loud one inside multi (append, touch) reads the reply a failed quiet one
# left, and every later reply is one behind on either server; its quiet
# incr/decr fails in Dalli itself.
attempt("quiet multi mixed") do
  dc.set("qm", "base", 0, raw: true)
  dc.multi do
    dc.add("qm", "no")
    dc.add("qm2", "added", 0, raw: true)
    dc.replace("qm", "replaced", 0, raw: true)
    dc.replace("nope", "no")
    dc.delete("qm2")
    dc.delete("nope")
    dc.set("qm3", "3", 0, raw: true)
  end
  [dc.get("qm", raw: true), dc.get("qm2"), dc.get("qm3", raw: true)]
end
attempt("quiet multi then get") { dc.get("a") }
attempt("quiet multi with error") do
  dc.multi do
    dc.set("qe1", "x")
    dc.set("qe2", "y" * (2 * 1024 * 1024), 0, raw: true)
    dc.set("qe3", "z")
  end
  [dc.get("qe1"), dc.get("qe2"), dc.get("qe3")]
end
attempt("stats shape") do
  s = dc.stats.values.first
  %w[pid uptime curr_items total_items get_hits get_misses cmd_get cmd_set].all? { |k| s.key?(k) }
end
attempt("stats items shape") { dc.stats(:items).values.first.is_a?(Hash) }
attempt("stats slabs shape") { dc.stats(:slabs).values.first.key?("active_slabs") }
attempt("stats settings shape") do
  s = dc.stats(:settings).values.first
  %w[maxbytes maxconns tcpport item_size_max num_threads cas_enabled].reject { |k| s.key?(k) }
end
attempt("stats settings item_size_max") { dc.stats(:settings).values.first["item_size_max"] }
attempt("stats unknown type") { dc.stats(:detail).values.first.key?("pid") }
attempt("reset_stats counts") do
  dc.get("a")
  dc.reset_stats
  s = dc.stats.values.first
  [s["get_hits"], s["get_misses"], s["cmd_get"], s["total_items"]]
end
attempt("reset_stats") { dc.reset_stats.class }
attempt("version shape") { dc.version.values.first.to_s.match?(/\A\d+\.\d+\.\d+/) }
attempt("alive") { dc.alive!.nil? }
# Dalli staggers flush(delay) over its servers, the first at 0: with one
# server it flushes now, and the set after it must survive the 3 s wait.
attempt("flush with delay") { dc.set("fd", "x") && dc.flush(2).is_a?(Array) }
attempt("before delayed flush") { dc.get("fd") }
attempt("after delayed flush") do
  sleep 3.1
  dc.get("fd")
end
attempt("set after delayed flush") { dc.set("fd", "y") != false && dc.get("fd") }
attempt("close and reconnect") do
  dc.close
  dc.get("fd")
end
attempt("reset and reconnect") do
  dc.reset
  dc.set("rr", "again") != false && dc.get("rr")
end
attempt("with") { dc.with { |c| c.get("rr") } }
attempt("flush again") { dc.flush.is_a?(Array) }
attempt("get after flush") { dc.get("a") }
dc.close
dz.close
