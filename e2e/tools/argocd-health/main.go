// Command argocd-health runs an Argo CD resource health check (health.lua)
// the way Argo CD does: gopher-lua, the version Argo CD v3.6 pins, with only
// the libraries Argo CD opens for a health check from argocd-cm (package,
// base, table and a safe os with time and date; no string, no math, no io),
// the object as the global `obj`, a one-second deadline, and the returned
// table read as {status, message} with the statuses Argo CD accepts (any
// other becomes Unknown with Argo CD's message).
//
//	argocd-health health.lua object.json...
//
// prints one JSON line per object: {"file", "status", "message"}; a Lua
// error or a return value that is not a table fails the run.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Argo CD's health statuses (gitops-engine pkg/health).
var validStatuses = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true,
	"Healthy": true, "Degraded": true, "Missing": true,
}

type result struct {
	File    string `json:"file"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

// decodeValue mirrors Argo CD's util/lua decodeValue.
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	}
	return lua.LNil
}

// safeOs is the subset of Lua's os library Argo CD exposes.
var safeOs = map[string]lua.LGFunction{
	"time": func(l *lua.LState) int {
		l.Push(lua.LNumber(time.Now().Unix()))
		return 1
	},
	"date": func(l *lua.LState) int {
		format := "%c"
		if l.GetTop() >= 1 {
			format = l.CheckString(1)
		}
		t := time.Now()
		if strings.HasPrefix(format, "!") {
			t, format = t.UTC(), format[1:]
		}
		r := strings.NewReplacer("%Y", "2006", "%m", "01", "%d", "02", "%H", "15", "%M", "04", "%S", "05", "%c", "02 Jan 06 15:04 MST")
		l.Push(lua.LString(t.Format(r.Replace(format))))
		return 1
	},
}

func run(script string, obj map[string]any) (result, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, func(l *lua.LState) int {
			l.Push(l.RegisterModule(lua.OsLibName, safeOs))
			return 1
		}},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return result{}, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decodeValue(l, obj))
	if err := l.DoString(script); err != nil {
		return result{}, err
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return result{}, fmt.Errorf("expect table output from Lua script, not %s", l.Get(-1).Type())
	}
	status, _ := ret.RawGetString("status").(lua.LString)
	message, _ := ret.RawGetString("message").(lua.LString)
	if !validStatuses[string(status)] {
		return result{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return result{Status: string(status), Message: string(message)}, nil
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health health.lua object.json...")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	for _, file := range os.Args[2:] {
		raw, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		var obj map[string]any
		if err := json.Unmarshal(raw, &obj); err != nil {
			fmt.Fprintf(os.Stderr, "%s: not a JSON object: %v\n", file, err)
			os.Exit(1)
		}
		r, err := run(string(script), obj)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", file, err)
			os.Exit(1)
		}
		r.File = file
		if err := out.Encode(r); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
