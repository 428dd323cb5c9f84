package trust

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// strictDecoder reads JSON token by token so that a pin set has one
// accepted spelling: member names matched exactly (encoding/json would match
// them case-insensitively), no member twice, no unknown member, integers
// without fraction, exponent or sign, nothing after the document.
type strictDecoder struct{ dec *json.Decoder }

func newStrictDecoder(data []byte) *strictDecoder {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return &strictDecoder{dec}
}

// object reads one object; member is called for each member name and must
// read its value. Every name in required must be present.
func (d *strictDecoder) object(member func(name string) error, required ...string) error {
	if tok, err := d.dec.Token(); err != nil || tok != json.Delim('{') {
		return errors.New("not an object")
	}
	seen := map[string]bool{}
	for d.dec.More() {
		tok, err := d.dec.Token()
		if err != nil {
			return err
		}
		name, _ := tok.(string)
		if seen[name] {
			return fmt.Errorf("member %q repeated", name)
		}
		seen[name] = true
		if err := member(name); err != nil {
			return err
		}
	}
	if tok, err := d.dec.Token(); err != nil || tok != json.Delim('}') {
		return errors.New("unterminated object")
	}
	for _, r := range required {
		if !seen[r] {
			return fmt.Errorf("member %q missing", r)
		}
	}
	return nil
}

// array reads one array; elem is called for each element and must read it.
func (d *strictDecoder) array(elem func() error) error {
	if tok, err := d.dec.Token(); err != nil || tok != json.Delim('[') {
		return errors.New("not an array")
	}
	for d.dec.More() {
		if err := elem(); err != nil {
			return err
		}
	}
	if tok, err := d.dec.Token(); err != nil || tok != json.Delim(']') {
		return errors.New("unterminated array")
	}
	return nil
}

func (d *strictDecoder) str() (string, error) {
	tok, err := d.dec.Token()
	if err != nil {
		return "", err
	}
	s, ok := tok.(string)
	if !ok {
		return "", errors.New("not a string")
	}
	return s, nil
}

// integer reads a non-negative integer written in plain decimal digits
// without leading zeros.
func (d *strictDecoder) integer() (int64, error) {
	tok, err := d.dec.Token()
	if err != nil {
		return 0, err
	}
	n, ok := tok.(json.Number)
	if !ok {
		return 0, errors.New("not a number")
	}
	v, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil || v < 0 || strconv.FormatInt(v, 10) != n.String() {
		return 0, fmt.Errorf("%q is not a plain non-negative integer", n.String())
	}
	return v, nil
}

// end checks that nothing follows the document.
func (d *strictDecoder) end() error {
	if _, err := d.dec.Token(); err != io.EOF {
		return errors.New("data after the object")
	}
	return nil
}
