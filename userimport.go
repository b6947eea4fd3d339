package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/passflow/passflow/auth"
)

// maxImportLine bounds one line of an import file.
const maxImportLine = 64 << 10

// readImport reads users to import from a .jsonl or .csv file, chosen by
// extension. Both carry FastAPI's names: username, hashed_password, scopes
// (a JSON array; space-delimited in CSV) and disabled. Other fields (email,
// full_name, ...) are ignored.
func readImport(path string) ([]auth.ImportedUser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jsonl":
		return readJSONL(f)
	case ".csv":
		return readCSV(f)
	}
	return nil, fmt.Errorf("%s: the file must end in .jsonl or .csv", path)
}

func readJSONL(r io.Reader) ([]auth.ImportedUser, error) {
	var users []auth.ImportedUser
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxImportLine)
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var rec struct {
			Username       *string  `json:"username"`
			HashedPassword *string  `json:"hashed_password"`
			Scopes         []string `json:"scopes"`
			Disabled       *bool    `json:"disabled"`
		}
		dec := json.NewDecoder(bytes.NewReader(text))
		if err := dec.Decode(&rec); err != nil {
			return nil, fmt.Errorf("line %d: not a JSON object with username, hashed_password, scopes and disabled", line)
		}
		if rec.Username == nil || rec.HashedPassword == nil {
			return nil, fmt.Errorf("line %d: username and hashed_password are required", line)
		}
		users = append(users, auth.ImportedUser{
			Line: line, Username: *rec.Username, HashedPassword: *rec.HashedPassword,
			Scopes: rec.Scopes, Disabled: rec.Disabled != nil && *rec.Disabled,
		})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return users, nil
}

func readCSV(r io.Reader) ([]auth.ImportedUser, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, errors.New("line 1: want a header row naming username, hashed_password, scopes, disabled")
	}
	col := map[string]int{}
	for i, name := range header {
		col[strings.TrimSpace(strings.TrimPrefix(name, "\ufeff"))] = i
	}
	for _, required := range []string{"username", "hashed_password"} {
		if _, ok := col[required]; !ok {
			return nil, fmt.Errorf("line 1: the header has no %s column", required)
		}
	}
	field := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	var users []auth.ImportedUser
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return users, nil
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("line %d: malformed CSV", line)
		}
		disabled := false
		if d := field(rec, "disabled"); d != "" {
			if disabled, err = strconv.ParseBool(d); err != nil {
				return nil, fmt.Errorf("line %d: disabled must be true or false", line)
			}
		}
		users = append(users, auth.ImportedUser{
			Line: line, Username: field(rec, "username"), HashedPassword: field(rec, "hashed_password"),
			Scopes: strings.Fields(field(rec, "scopes")), Disabled: disabled,
		})
	}
}
