// Package dataset generates deterministic sample Codr entities for tests,
// benchmarks and bulk-import datasets.
package dataset

import (
	"encoding/binary"
	"math/rand/v2"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

var (
	firstNames = []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Frances", "Dennis", "Radia", "Linus", "Sophie", "Tim", "Hedy", "John"}
	lastNames  = []string{"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Thompson", "Allen", "Ritchie", "Perlman", "Torvalds", "Wilson", "Berners-Lee", "Lamarr", "McCarthy"}
	cities     = []string{"London", "Zürich", "São Paulo", "Kraków", "Montréal", "Tokyo", "Nairobi", "Austin"}
	countries  = []string{"GB", "CH", "BR", "PL", "CA", "JP", "KE", "US"}
	streets    = []string{"High Street", "Station Road", "Church Lane", "Main Street", "Park Avenue", "Mill Road"}
	roles      = []string{"admin", "annotator", "reviewer", "viewer", "owner"}
	tagWords   = []string{"ml", "vision", "nlp", "beta", "enterprise", "trial", "priority", "eu", "us", "labeling", "qa", "audio"}
	locales    = []string{"en-GB", "en-US", "de-CH", "pt-BR", "pl-PL", "fr-CA", "ja-JP"}
	timezones  = []string{"Europe/London", "Europe/Zurich", "America/Sao_Paulo", "Europe/Warsaw", "America/Toronto", "Asia/Tokyo"}
	lorem      = "Works on data annotation pipelines; likes tidy schemas, fast feedback and well-named topics. "
)

// epoch is the creation time of the first generated entity.
var epoch = time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)

// Entity returns the i-th sample "user" entity of a dataset: its ObjectId and
// its payload as relaxed extended JSON of about 1 KiB (nested address and
// preferences, a tags array, team memberships, $oid references, $date and
// $numberLong values, numbers and strings, some non-ASCII). The same (seed, i)
// always gives the same bytes; payloads of one seed have distinct ids.
func Entity(seed int64, i int) (id bson.ObjectID, payloadJSON []byte) {
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(i)))
	created := epoch.Add(time.Duration(i) * time.Second)
	id = objectID(created, uint64(seed), uint64(i))
	org := objectID(epoch, uint64(seed)^0x5eed, uint64(rng.IntN(50)))

	first := firstNames[rng.IntN(len(firstNames))]
	last := lastNames[rng.IntN(len(lastNames))]
	city := rng.IntN(len(cities))

	b := make([]byte, 0, 1280)
	b = append(b, `{"_id":{"$oid":"`...)
	b = append(b, id.Hex()...)
	b = append(b, `"},"name":"`...)
	b = append(b, first...)
	b = append(b, ' ')
	b = append(b, last...)
	b = append(b, `","email":"`...)
	b = append(b, first...)
	b = append(b, '.')
	b = append(b, last...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `@example.com","orgId":{"$oid":"`...)
	b = append(b, org.Hex()...)
	b = append(b, `"},"role":"`...)
	b = append(b, roles[rng.IntN(len(roles))]...)
	b = append(b, `","active":`...)
	b = strconv.AppendBool(b, rng.IntN(10) != 0)
	b = append(b, `,"createdAt":{"$date":"`...)
	b = created.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `"},"updatedAt":{"$date":"`...)
	b = created.Add(time.Duration(rng.Int64N(int64(400*24*time.Hour)))).Truncate(time.Millisecond).AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `"},"address":{"street":"`...)
	b = strconv.AppendInt(b, int64(1+rng.IntN(200)), 10)
	b = append(b, ' ')
	b = append(b, streets[rng.IntN(len(streets))]...)
	b = append(b, `","city":"`...)
	b = append(b, cities[city]...)
	b = append(b, `","zip":"`...)
	b = strconv.AppendInt(b, int64(10000+rng.IntN(89999)), 10)
	b = append(b, `","country":"`...)
	b = append(b, countries[city]...)
	b = append(b, `","geo":{"lat":`...)
	b = strconv.AppendFloat(b, float64(rng.IntN(180_000_000)-90_000_000)/1e6, 'f', -1, 64)
	b = append(b, `,"lng":`...)
	b = strconv.AppendFloat(b, float64(rng.IntN(360_000_000)-180_000_000)/1e6, 'f', -1, 64)
	b = append(b, `}},"tags":[`...)
	for t, n := 0, 2+rng.IntN(5); t < n; t++ {
		if t > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, tagWords[rng.IntN(len(tagWords))]...)
		b = append(b, '"')
	}
	b = append(b, `],"preferences":{"locale":"`...)
	b = append(b, locales[rng.IntN(len(locales))]...)
	b = append(b, `","timezone":"`...)
	b = append(b, timezones[rng.IntN(len(timezones))]...)
	b = append(b, `","theme":"`...)
	b = append(b, [...]string{"light", "dark", "system"}[rng.IntN(3)]...)
	b = append(b, `","notifications":{"email":`...)
	b = strconv.AppendBool(b, rng.IntN(2) == 0)
	b = append(b, `,"sms":`...)
	b = strconv.AppendBool(b, rng.IntN(4) == 0)
	b = append(b, `,"push":`...)
	b = strconv.AppendBool(b, rng.IntN(2) == 0)
	b = append(b, `,"digest":"`...)
	b = append(b, [...]string{"daily", "weekly", "never"}[rng.IntN(3)]...)
	b = append(b, `"},"shortcuts":{"save":"ctrl+s","next":"n","prev":"p"}},"counters":{"logins":`...)
	b = strconv.AppendInt(b, int64(rng.IntN(5000)), 10)
	b = append(b, `,"projects":`...)
	b = strconv.AppendInt(b, int64(rng.IntN(40)), 10)
	b = append(b, `,"annotations":{"$numberLong":"`...)
	b = strconv.AppendInt(b, rng.Int64N(1<<40), 10)
	b = append(b, `"},"score":`...)
	b = strconv.AppendFloat(b, float64(rng.IntN(10000))/10000, 'f', -1, 64)
	b = append(b, `},"teams":[`...)
	for t, n := 0, 1+rng.IntN(3); t < n; t++ {
		if t > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"teamId":{"$oid":"`...)
		b = append(b, objectID(epoch, uint64(seed)^0x7ea, uint64(rng.IntN(500))).Hex()...)
		b = append(b, `"},"role":"`...)
		b = append(b, roles[rng.IntN(len(roles))]...)
		b = append(b, `","joinedAt":{"$date":"`...)
		b = created.Add(time.Duration(rng.Int64N(int64(90*24*time.Hour)))).Truncate(time.Millisecond).AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
		b = append(b, `"}}`...)
	}
	b = append(b, `],"bio":"`...)
	for len(b) < 1000 {
		b = append(b, lorem...)
	}
	b = append(b, `"}`...)
	return id, b
}

// objectID builds a deterministic ObjectId: creation seconds, then 8 bytes
// from (a, b) so distinct b give distinct ids.
func objectID(t time.Time, a, b uint64) bson.ObjectID {
	var id bson.ObjectID
	binary.BigEndian.PutUint32(id[0:4], uint32(t.Unix()))
	binary.BigEndian.PutUint64(id[4:12], a*0x9e3779b97f4a7c15^b)
	return id
}
