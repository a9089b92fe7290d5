// gomemcache_ops.go - a fixed sequence of github.com/bradfitz/gomemcache
// (Go, text protocol) calls against HOST:PORT, one line per outcome, for
// test_clients.py to compare between memcached and bitcached. An error
// prints its text, which for an unexpected reply quotes the server's line,
// so error strings are compared too. Built by test_clients.py in GOPATH
// mode against Debian's packaged source (no module download).
package main

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

var n int

func out(what string, val interface{}) {
	n++
	fmt.Printf("%d %s: %v\n", n, what, val)
}

// errs prints an error, or "ok" for none.
func errs(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func value(it *memcache.Item, err error) string {
	if err != nil {
		return "error " + errs(err)
	}
	return fmt.Sprintf("%q flags %d", it.Value, it.Flags)
}

func length(it *memcache.Item, err error) string {
	if err != nil {
		return "error " + errs(err)
	}
	return fmt.Sprintf("%d bytes", len(it.Value))
}

func number(v uint64, err error) string {
	if err != nil {
		return "error " + errs(err)
	}
	return fmt.Sprint(v)
}

func multi(m map[string]*memcache.Item, err error) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := []string{}
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%q", k, m[k].Value))
	}
	return strings.Join(parts, " ") + " / " + errs(err)
}

func set(c *memcache.Client, key, val string) error {
	return c.Set(&memcache.Item{Key: key, Value: []byte(val)})
}

func main() {
	c := memcache.New(os.Args[1])
	c.Timeout = 5 * time.Second

	out("flush", errs(c.FlushAll()))
	out("set", errs(set(c, "a", "one")))
	out("get", value(c.Get("a")))
	out("get missing", value(c.Get("nope")))
	out("set empty", errs(set(c, "empty", "")))
	out("get empty", value(c.Get("empty")))
	out("set flags", errs(c.Set(&memcache.Item{Key: "f", Value: []byte("\x00\r\n\xff"), Flags: 0xdeadbeef})))
	out("get flags", value(c.Get("f")))
	out("add existing", errs(c.Add(&memcache.Item{Key: "a", Value: []byte("two")})))
	out("add new", errs(c.Add(&memcache.Item{Key: "b", Value: []byte("two")})))
	out("replace missing", errs(c.Replace(&memcache.Item{Key: "nope", Value: []byte("x")})))
	out("replace", errs(c.Replace(&memcache.Item{Key: "b", Value: []byte("three")})))
	out("get b", value(c.Get("b")))
	it, err := c.Get("a")
	out("get for cas", value(it, err))
	if it != nil {
		it.Value = []byte("via-cas")
		out("cas current", errs(c.CompareAndSwap(it)))
		it.Value = []byte("stale")
		out("cas stale", errs(c.CompareAndSwap(it)))
	}
	out("get a", value(c.Get("a")))
	it, _ = c.Get("b")
	c.Delete("b")
	if it != nil {
		out("cas on deleted", errs(c.CompareAndSwap(it)))
	}
	out("cas never fetched", errs(c.CompareAndSwap(&memcache.Item{Key: "nope", Value: []byte("x")})))
	out("increment missing", number(c.Increment("ctr", 1)))
	set(c, "ctr", "10")
	out("increment", number(c.Increment("ctr", 5)))
	out("decrement", number(c.Decrement("ctr", 100)))
	out("get ctr", value(c.Get("ctr")))
	out("decrement missing", number(c.Decrement("nope", 1)))
	set(c, "w", "18446744073709551615")
	out("increment wrap", number(c.Increment("w", 2)))
	out("increment non-numeric", number(c.Increment("a", 1)))
	out("touch", errs(c.Touch("a", 100)))
	out("touch missing", errs(c.Touch("nope", 100)))
	keys := []string{}
	for i := 1; i <= 300; i++ {
		k := fmt.Sprintf("m%d", i)
		keys = append(keys, k)
		set(c, k, strings.Repeat(k, 3))
	}
	m, err := c.GetMulti(keys)
	same := err == nil && len(m) == 300
	for _, k := range keys {
		same = same && m[k] != nil && string(m[k].Value) == strings.Repeat(k, 3)
	}
	out("GetMulti many", fmt.Sprintf("%d %v %s", len(m), same, errs(err)))
	out("GetMulti", multi(c.GetMulti([]string{"a", "b", "nope", "ctr"})))
	out("GetMulti none", multi(c.GetMulti([]string{"nope1", "nope2"})))
	out("delete", errs(c.Delete("m1")))
	out("delete missing", errs(c.Delete("m1")))
	out("get deleted", value(c.Get("m1")))
	c.Set(&memcache.Item{Key: "e", Value: []byte("soon"), Expiration: 1})
	time.Sleep(2100 * time.Millisecond)
	out("expiry", value(c.Get("e")))
	k250 := strings.Repeat("k", 250)
	out("key of 250 bytes", errs(set(c, k250, "long key")))
	out("get key of 250 bytes", value(c.Get(k250)))
	out("key of 251 bytes", errs(set(c, k250+"k", "x")))
	out("key with space", errs(set(c, "has space", "x")))
	big := bytes.Repeat([]byte("x"), 900*1024)
	out("value of 900 KiB", errs(c.Set(&memcache.Item{Key: "big", Value: big})))
	it, err = c.Get("big")
	out("get 900 KiB", err == nil && bytes.Equal(it.Value, big))
	out("value of 1 MiB-1", errs(c.Set(&memcache.Item{Key: "mib", Value: bytes.Repeat([]byte("y"), 1024*1024-1)})))
	out("get 1 MiB-1", length(c.Get("mib")))
	out("value over 1 MiB", errs(c.Set(&memcache.Item{Key: "big", Value: bytes.Repeat([]byte("z"), 1024*1024+1)})))
	out("get after too large", length(c.Get("big")))
	out("add over 1 MiB", errs(c.Add(&memcache.Item{Key: "huge", Value: bytes.Repeat([]byte("z"), 2*1024*1024)})))
	out("get a after", value(c.Get("a")))
	out("flush again", errs(c.FlushAll()))
	out("get after flush", value(c.Get("a")))
	out("DeleteAll", errs(c.DeleteAll()))
}
