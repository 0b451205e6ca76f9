package dataset

import (
	"bytes"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

func TestEntity(t *testing.T) {
	t.Run("the same seed and index give the same bytes", func(t *testing.T) {
		id1, p1 := Entity(7, 42)
		id2, p2 := Entity(7, 42)
		if id1 != id2 || !bytes.Equal(p1, p2) {
			t.Fatal("not deterministic")
		}
	})
	t.Run("entities are about 1 KiB of valid extended JSON with their id", func(t *testing.T) {
		seen := map[bson.ObjectID]bool{}
		for i := range 200 {
			id, p := Entity(1, i)
			if len(p) < 900 || len(p) > 1400 {
				t.Errorf("entity %d is %d bytes", i, len(p))
			}
			var d bson.D
			if err := bson.UnmarshalExtJSON(p, false, &d); err != nil {
				t.Fatalf("entity %d: %v\n%s", i, err, p)
			}
			if d[0].Key != "_id" || d[0].Value != id {
				t.Fatalf("entity %d: _id %v, want %v", i, d[0].Value, id)
			}
			if seen[id] {
				t.Fatalf("entity %d: duplicate id %v", i, id)
			}
			seen[id] = true
		}
	})
	t.Run("different seeds give different datasets", func(t *testing.T) {
		_, a := Entity(1, 0)
		_, b := Entity(2, 0)
		if bytes.Equal(a, b) {
			t.Fatal("same payload for different seeds")
		}
	})
}
