package main

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestGeneratedWithKeysRepeatsTheKeysWithNewVersions(t *testing.T) {
	const n, keys = 10, 4
	var ids []string
	var payloads [][]byte
	err := generated(1, n, keys)(func(e entity) bool {
		var v struct {
			ID struct {
				OID string `json:"$oid"`
			} `json:"_id"`
		}
		if err := json.Unmarshal(e.json, &v); err != nil {
			t.Fatalf("record %d: %v", e.line, err)
		}
		ids = append(ids, v.ID.OID)
		payloads = append(payloads, e.json)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	distinct := map[string]bool{}
	for i, id := range ids {
		distinct[id] = true
		if id != ids[i%keys] {
			t.Errorf("record %d has _id %s, want the _id of record %d, %s", i, id, i%keys, ids[i%keys])
		}
		if i >= keys && bytes.Equal(payloads[i], payloads[i%keys]) {
			t.Errorf("record %d repeats record %d instead of carrying a new version", i, i%keys)
		}
	}
	if len(distinct) != keys {
		t.Errorf("%d distinct _ids, want %d", len(distinct), keys)
	}
}
