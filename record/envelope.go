package record

// SplitEnvelope finds, in a valid JSON value, the envelope's "record" part
// and the raw JSON of its headers' traceId and processedAt (nil when
// absent), without copying: the results alias value. A repeated "record" or
// "headers" counts as Decode reads it: the last one, whole (JSON.parse). ok
// is false when the value is not an envelope, or one the scanner declines
// (such as escaped names).
func SplitEnvelope(value []byte) (rec, traceID, processedAt []byte, ok bool) {
	d := fastDecoder{in: value}
	if !d.expect('{') || d.next() == '}' {
		return nil, nil, nil, false
	}
	var env envHeaders
	for {
		key, ok := d.plainKey()
		if !ok || !d.expect(':') {
			return nil, nil, nil, false
		}
		d.ws()
		start := d.pos
		switch string(key) {
		case "headers":
			env = envHeaders{}
			ok = d.headers(&env)
		case "record":
			ok = d.skipValue()
			rec = value[start:d.pos]
		default:
			ok = d.skipValue()
		}
		if !ok {
			return nil, nil, nil, false
		}
		if more, ok := d.separator('}'); !ok {
			return nil, nil, nil, false
		} else if !more {
			break
		}
	}
	if rec == nil {
		return nil, nil, nil, false
	}
	return rec, env.traceID, env.processedAt, true
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
