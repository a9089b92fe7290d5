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
attempt("stats shape") do
  s = dc.stats.values.first
  %w[pid uptime curr_items total_items get_hits get_misses cmd_get cmd_set].all? { |k| s.key?(k) }
end
attempt("stats items shape") { dc.stats(:items).values.first.is_a?(Hash) }
attempt("reset_stats") { dc.reset_stats.class }
attempt("version shape") { dc.version.values.first.to_s.match?(/\A\d+\.\d+\.\d+/) }
attempt("alive") { dc.alive!.nil? }
attempt("flush again") { dc.flush.is_a?(Array) }
attempt("get after flush") { dc.get("a") }
dc.close
dz.close
