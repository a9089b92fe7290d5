# perl_ops.pl - a fixed sequence of Perl client calls against HOST:PORT,
# one line per outcome, for test_clients.py to compare between memcached
# and bitcached. The second argument names the library: Cache::Memcached::Fast
# (gets/cas, multi ops, nowait i.e. noreply, touch, gat, server_versions) or
# Cache::Memcached (the calls it has). Both speak the text protocol. Values
# that differ between servers by design (cas numbers, stats figures) are
# printed as their shape only.
use strict;
use warnings;
use Data::Dumper;

my ($server, $lib) = @ARGV;
$Data::Dumper::Indent   = 0;
$Data::Dumper::Terse    = 1;
$Data::Dumper::Sortkeys = 1;
$Data::Dumper::Useqq    = 1;
$| = 1;

my $n = 0;

sub out {
    my ($what, @vals) = @_;
    $n++;
    print "$n $what: ", Dumper(@vals == 1 ? $vals[0] : \@vals), "\n";
}

# The outcome of a call in list context, or what it died with.
sub attempt {
    my ($what, $call) = @_;
    my @vals = eval { $call->() };
    if ($@) {
        my $err = "$@";
        $err =~ s/ at \S+ line \d+.*//s;
        @vals = ("died $err");
    }
    out($what, @vals);
}

sub len_or_undef {
    my ($v) = @_;
    return defined $v ? length($v) : undef;
}

my $mib1 = 'y' x (1024 * 1024 - 1);
my $over = 'z' x (1024 * 1024 + 1);
my $big  = 'x' x (900 * 1024);

if ($lib eq 'Cache::Memcached') {
    require Cache::Memcached;
    my $c = Cache::Memcached->new({servers => [$server], compress_threshold => 0,
                                   connect_timeout => 2, select_timeout => 5});
    $c->enable_compress(0);
    my $cz = Cache::Memcached->new({servers => [$server], compress_threshold => 100});
    attempt('flush_all', sub { $c->flush_all });
    attempt('set', sub { $c->set('a', 'one') });
    attempt('get', sub { $c->get('a') });
    attempt('get missing', sub { $c->get('nope') });
    attempt('set empty', sub { $c->set('empty', '') });
    attempt('get empty', sub { $c->get('empty') });
    attempt('set ref', sub { $c->set('o', {x => [1, 2, 3], y => undef}) });
    attempt('get ref', sub { $c->get('o') });
    attempt('add existing', sub { $c->add('a', 'two') });
    attempt('add new', sub { $c->add('b', 'two') });
    attempt('replace missing', sub { $c->replace('nope', 'x') });
    attempt('replace', sub { $c->replace('b', 'three') });
    attempt('append', sub { $c->set('s', 'mid'); $c->append('s', '-end') });
    attempt('prepend', sub { $c->prepend('s', 'start-') });
    attempt('get s', sub { $c->get('s') });
    attempt('append missing', sub { $c->append('nope', 'x') });
    attempt('incr missing', sub { $c->incr('ctr', 1) });
    attempt('incr', sub { $c->set('ctr', 10); $c->incr('ctr', 5) });
    attempt('decr', sub { $c->decr('ctr', 100) });
    attempt('decr missing', sub { $c->decr('nope2', 1) });
    attempt('incr wrap', sub { $c->set('w', '18446744073709551615'); $c->incr('w', 2) });
    attempt('incr non-numeric', sub { $c->incr('a', 1) });
    attempt('get_multi', sub { $c->get_multi('a', 'b', 'nope', 's') });
    attempt('get_multi many', sub {
        $c->set("m$_", "m$_" x 3) for 1 .. 300;
        my $h = $c->get_multi(map {"m$_"} 1 .. 300);
        [scalar(keys %$h), scalar(grep { $h->{"m$_"} eq "m$_" x 3 } 1 .. 300)];
    });
    attempt('delete', sub { $c->delete('b') });
    attempt('delete missing', sub { $c->delete('b') });
    attempt('get deleted', sub { $c->get('b') });
    attempt('expiry', sub { $c->set('e', 'soon', 1); sleep 2; select(undef, undef, undef, 0.1); $c->get('e') });
    attempt('key of 250 bytes', sub { [$c->set('k' x 250, 'long key'), $c->get('k' x 250)] });
    attempt('key of 251 bytes', sub { $c->set('k' x 251, 'x') });
    attempt('value of 900 KiB', sub { [$c->set('big', $big), $c->get('big') eq $big] });
    attempt('value of 1 MiB-1', sub { $c->set('mib', $mib1) });
    attempt('get 1 MiB-1', sub { len_or_undef($c->get('mib')) });
    attempt('value over 1 MiB', sub { $c->set('big', $over) });
    attempt('get after too large', sub { len_or_undef($c->get('big')) });
    attempt('compressed', sub { my $v = 'compress me ' x 500; [$cz->set('z', $v), $cz->get('z') eq $v] });
    attempt('stats shape', sub {
        my $s = $c->stats(['misc']);
        my ($h) = values %{$s->{hosts}};
        [sort grep { /^(pid|uptime|curr_items|cmd_get|get_hits|version)$/ } keys %{$h->{misc}}];
    });
    attempt('flush_all again', sub { $c->flush_all });
    attempt('get after flush', sub { $c->get('a') });
    $c->disconnect_all;
    exit 0;
}

require Cache::Memcached::Fast;
my %opt = (servers => [$server], connect_timeout => 2, io_timeout => 5,
           compress_threshold => -1, max_failures => 0);
my $c  = Cache::Memcached::Fast->new({%opt});
my $cz = Cache::Memcached::Fast->new({%opt, compress_threshold => 100});
# no client-side size limit, so the server's own refusal is seen
my $cu = Cache::Memcached::Fast->new({%opt, max_size => 8 * 1024 * 1024});
my $cw = Cache::Memcached::Fast->new({%opt, nowait => 1});

attempt('flush_all', sub { [values %{$c->flush_all}] });
attempt('set', sub { $c->set('a', 'one') });
attempt('get', sub { $c->get('a') });
attempt('get missing', sub { $c->get('nope') });
attempt('set empty', sub { $c->set('empty', '') });
attempt('get empty', sub { $c->get('empty') });
attempt('set ref', sub { $c->set('o', {x => [1, 2, 3], y => undef}) });
attempt('get ref', sub { $c->get('o') });
attempt('set binary', sub { $c->set('by', "\0\1\r\n\xff") });
attempt('get binary', sub { $c->get('by') });
attempt('add existing', sub { $c->add('a', 'two') });
attempt('add new', sub { $c->add('b', 'two') });
attempt('replace missing', sub { $c->replace('nope', 'x') });
attempt('replace', sub { $c->replace('b', 'three') });
attempt('append', sub { $c->set('s', 'mid'); $c->append('s', '-end') });
attempt('prepend', sub { $c->prepend('s', 'start-') });
attempt('get s', sub { $c->get('s') });
attempt('append missing', sub { $c->append('nope', 'x') });
attempt('gets shape', sub { my $r = $c->gets('a'); [$r->[0] > 0, $r->[1]] });
attempt('gets missing', sub { $c->gets('nope') });
attempt('cas current', sub { my $r = $c->gets('a'); $c->cas('a', $r->[0], 'via-cas') });
attempt('cas stale', sub { my $r = $c->gets('a'); $c->set('a', 'newer'); $c->cas('a', $r->[0], 'stale') });
attempt('get a', sub { $c->get('a') });
attempt('cas missing', sub { $c->cas('nope', 12345, 'x') });
attempt('gets_multi shape', sub {
    my $h = $c->gets_multi('a', 'b', 'nope');
    [map { [$_, $h->{$_}[0] > 0, $h->{$_}[1]] } sort keys %$h];
});
attempt('cas_multi', sub {
    my $h = $c->gets_multi('a', 'b');
    [$c->cas_multi(['a', $h->{a}[0], 'A'], ['b', 1, 'B'], ['nope', 1, 'C'])];
});
attempt('incr missing', sub { $c->incr('ctr') });
attempt('incr', sub { $c->set('ctr', 10); $c->incr('ctr', 5) });
attempt('decr', sub { $c->decr('ctr', 100) });
attempt('decr missing', sub { $c->decr('nope2') });
attempt('incr wrap', sub { $c->set('w', '18446744073709551615'); $c->incr('w', 2) });
attempt('incr non-numeric', sub { $c->incr('a', 1) });
attempt('incr_multi', sub { $c->set('c1', 1); $c->set('c2', 2); [$c->incr_multi('c1', ['c2', 10], 'nope')] });
attempt('decr_multi', sub { [$c->decr_multi(['c1', 5], 'c2', 'nope')] });
attempt('touch', sub { $c->touch('a', 100) });
attempt('touch missing', sub { $c->touch('nope', 100) });
attempt('touch_multi', sub { [$c->touch_multi(['a', 100], ['nope', 100])] });
attempt('gat', sub { $c->gat(200, 'a') });
attempt('gat missing', sub { $c->gat(200, 'nope') });
attempt('gat_multi', sub { $c->gat_multi(200, 'a', 's', 'nope') });
attempt('gats shape', sub { my $r = $c->gats(200, 'a'); [$r->[0] > 0, $r->[1]] });
attempt('set_multi', sub { scalar(grep {$_} $c->set_multi(map { ["m$_", "m$_" x 3] } 1 .. 300)) });
attempt('get_multi many', sub {
    my $h = $c->get_multi(map {"m$_"} 1 .. 300);
    [scalar(keys %$h), scalar(grep { $h->{"m$_"} eq "m$_" x 3 } 1 .. 300)];
});
attempt('get_multi', sub { $c->get_multi('a', 'b', 'nope', 's') });
attempt('add_multi', sub { [$c->add_multi(['a', 'x'], ['new1', 'y'])] });
attempt('replace_multi', sub { [$c->replace_multi(['new1', 'z'], ['nope', 'y'])] });
attempt('append_multi', sub { [$c->append_multi(['new1', '+'], ['nope', '+'])] });
attempt('prepend_multi', sub { [$c->prepend_multi(['new1', '-'], ['nope', '-'])] });
attempt('get new1', sub { $c->get('new1') });
attempt('nowait sets', sub {
    $cw->set("q$_", $_) for 1 .. 100;
    $cw->delete('q50');
    $cw->incr('ctr', 3);
    $cw->nowait_push;
    $c->get_multi('q1', 'q49', 'q50', 'q100', 'ctr');
});
attempt('nowait error', sub { $cw->incr('a', 1); $cw->add('a', 'x'); $cw->nowait_push; $c->get('a') });
attempt('delete', sub { $c->delete('b') });
attempt('delete missing', sub { $c->delete('b') });
attempt('get deleted', sub { $c->get('b') });
attempt('delete_multi', sub { [$c->delete_multi('m1', 'm2', 'nope')] });
attempt('expiry', sub { $c->set('e', 'soon', 1); sleep 2; select(undef, undef, undef, 0.1); $c->get('e') });
attempt('key of 250 bytes', sub { [$c->set('k' x 250, 'long key'), $c->get('k' x 250)] });
attempt('key of 251 bytes', sub { $c->set('k' x 251, 'x') });
attempt('get key of 251 bytes', sub { $c->get('k' x 251) });
attempt('value of 900 KiB', sub { [$c->set('big', $big), $c->get('big') eq $big] });
attempt('value of 1 MiB-1', sub { $cu->set('mib', $mib1) });
attempt('get 1 MiB-1', sub { len_or_undef($c->get('mib')) });
attempt('value over 1 MiB (client limit)', sub { $c->set('big', $over) });
attempt('value over 1 MiB', sub { $cu->set('big', $over) });
attempt('get after too large', sub { len_or_undef($c->get('big')) });
attempt('compressed', sub { my $v = 'compress me ' x 500; [$cz->set('z', $v), $cz->get('z') eq $v] });
attempt('compressed 1 MiB-1', sub { [$cz->set('zm', $mib1), $cz->get('zm') eq $mib1] });
attempt('server_versions shape', sub { [map { /^\d+\.\d+\.\d+/ ? 1 : $_ } values %{$c->server_versions}] });
attempt('flush_all delayed', sub { [values %{$c->flush_all(2)}] });
attempt('get before delayed flush', sub { $c->get('a') });
attempt('flush_all again', sub { [values %{$c->flush_all}] });
attempt('get after flush', sub { $c->get('a') });
$c->disconnect_all;
exit 0;
