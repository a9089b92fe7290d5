<?php
// php_ops.php - a fixed sequence of php-memcached (libmemcached) or
// php-memcache calls against HOST PORT MODE, one line per outcome, for
// test_clients.py to compare between memcached and bitcached. MODE is
// "ascii" or "binary" (php-memcached) or "memcache" (php-memcache). Values
// that differ between servers by design (cas numbers, stats figures) are
// printed as their shape only.

[$_, $host, $port, $mode] = $argv;
$n = 0;
function out($what, $val)
{
    global $n;
    $n++;
    echo $n, ' ', $what, ': ', json_encode($val), "\n";
}

if ($mode === 'memcache') {
    $m = new Memcache();
    out('connect', $m->connect($host, (int)$port, 2));
    out('flush', $m->flush());
    out('set', $m->set('a', 'one'));
    out('get', $m->get('a'));
    out('get missing', $m->get('nope'));
    out('get array', $m->get(['a', 'nope']));
    out('set array value', $m->set('o', ['x' => [1, 2]]));
    out('get array value', $m->get('o'));
    out('add existing', $m->add('a', 'two'));
    out('add new', $m->add('b', 'two'));
    out('replace missing', $m->replace('nope', 'x'));
    out('replace', $m->replace('b', 'three'));
    out('set number', $m->set('ctr', 10));
    out('increment', $m->increment('ctr', 5));
    out('decrement', $m->decrement('ctr', 100));
    out('increment missing', $m->increment('nope', 1));
    out('compressed', $m->set('z', str_repeat('compress me ', 500), MEMCACHE_COMPRESSED));
    out('get compressed', strlen($m->get('z')));
    out('delete', $m->delete('b'));
    out('delete missing', $m->delete('b'));
    $s = $m->getStats();
    out('stats shape', isset($s['pid'], $s['curr_items'], $s['cmd_get']));
    $items = $m->getExtendedStats('items');
    out('stats items shape', is_array($items) && count($items) === 1);
    out('version shape', (bool)preg_match('/^\d+\.\d+\.\d+/', (string)$m->getVersion()));
    out('flush again', $m->flush());
    out('get after flush', $m->get('a'));
    out('close', $m->close());
    exit(0);
}

$m = new Memcached();
$m->setOption(Memcached::OPT_BINARY_PROTOCOL, $mode === 'binary');
$m->setOption(Memcached::OPT_COMPRESSION, false);
$m->setOption(Memcached::OPT_CONNECT_TIMEOUT, 2000);
$m->setOption(Memcached::OPT_POLL_TIMEOUT, 2000);
$m->addServer($host, (int)$port);

function res($m)
{
    return $m->getResultCode();
}

out('flush', $m->flush());
out('set', [$m->set('a', 'one'), res($m)]);
out('get', [$m->get('a'), res($m)]);
out('get missing', [$m->get('nope'), res($m)]);
out('set array value', $m->set('o', ['x' => [1, 2, 3], 'y' => null]));
out('get array value', $m->get('o'));
out('set int', $m->set('i', 42));
out('get int', $m->get('i'));
out('set float', $m->set('f', 1.5));
out('get float', $m->get('f'));
out('set bool', $m->set('t', true));
out('get bool', $m->get('t'));
out('add existing', [$m->add('a', 'two'), res($m)]);
out('add new', [$m->add('b', 'two'), res($m)]);
out('replace missing', [$m->replace('nope', 'x'), res($m)]);
out('replace', [$m->replace('b', 'three'), res($m)]);
out('append', [$m->set('s', 'mid'), $m->append('s', '-end'), res($m)]);
out('prepend', [$m->prepend('s', 'start-'), res($m)]);
out('get s', $m->get('s'));
out('append missing', [$m->append('nope', 'x'), res($m)]);
out('increment missing', [$m->increment('ctr', 1), res($m)]);
out('set ctr', $m->set('ctr', '10'));
out('increment', [$m->increment('ctr', 5), res($m)]);
out('decrement', [$m->decrement('ctr', 100), res($m)]);
out('increment non-numeric', [$m->increment('a', 1), res($m)]);
if ($mode === 'binary') {
    out('increment with initial', [$m->increment('ctr2', 1, 7), res($m)]);
    out('increment after initial', [$m->increment('ctr2', 1, 7), res($m)]);
}
out('getMulti', $m->getMulti(['a', 'b', 'nope', 's']));
$keys = [];
for ($i = 1; $i <= 300; $i++) {
    $keys["m$i"] = str_repeat("m$i", 3);
}
out('setMulti', $m->setMulti($keys));
$got = $m->getMulti(array_keys($keys));
out('getMulti many', [count($got), $got == $keys]);
$r = $m->get('a', null, Memcached::GET_EXTENDED);
out('get extended shape', [$r['value'], is_int($r['cas']) && $r['cas'] > 0]);
out('cas current', [$m->cas($r['cas'], 'a', 'via-cas'), res($m)]);
out('cas stale', [$m->cas($r['cas'], 'a', 'stale'), res($m)]);
out('get a', $m->get('a'));
out('cas missing', [$m->cas(12345, 'nope', 'x'), res($m)]);
out('touch', [$m->touch('a', 100), res($m)]);
out('touch missing', [$m->touch('nope', 100), res($m)]);
out('delete', [$m->delete('b'), res($m)]);
out('delete missing', [$m->delete('b'), res($m)]);
out('deleteMulti', $m->deleteMulti(['s', 'nope']));
out('expiry', [$m->set('e', 'soon', 1), sleep(2), $m->get('e'), res($m)]);
$big = str_repeat('x', 900 * 1024);
out('large value', [$m->set('big', $big), $m->get('big') === $big]);
out('too large', [$m->set('huge', str_repeat('y', 2 * 1024 * 1024)), res($m)]);
$mz = new Memcached();
$mz->setOption(Memcached::OPT_BINARY_PROTOCOL, $mode === 'binary');
$mz->setOption(Memcached::OPT_COMPRESSION, true);
$mz->addServer($host, (int)$port);
$v = str_repeat('compress me ', 500);
out('compressed', [$mz->set('z', $v), $mz->get('z') === $v, $m->get('z') === $v]);
$s = $m->getStats();
$s = reset($s);
out('stats shape', isset($s['pid'], $s['curr_items'], $s['cmd_get'], $s['get_hits']));
$v = $m->getVersion();
out('version shape', (bool)preg_match('/^\d+\.\d+\.\d+/', (string)reset($v)));
if ($mode === 'ascii') {
    // getAllKeys walks the server's key dump (lru_crawler metadump / stats
    // cachedump); memcached lists keys only once they are settled, so the
    // test compares membership of a few keys, not the whole list.
    $all = $m->getAllKeys();
    out('getAllKeys shape', is_array($all) && in_array('a', $all, true) && in_array('m1', $all, true));
}
out('flush again', $m->flush());
out('get after flush', [$m->get('a'), res($m)]);
out('quit', $m->quit());
