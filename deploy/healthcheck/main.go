// Command zsm-healthcheck is the authsvc image's health check: the image has
// no shell, curl or wget, so this static binary GETs one URL and exits 0 on
// a 200 answer, 1 otherwise.
//
//	zsm-healthcheck http://127.0.0.1:8081/readyz
package main

import (
	"fmt"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: zsm-healthcheck URL")
		os.Exit(2)
	}
	os.Exit(check(os.Args[1]))
}

func check(url string) int {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "unhealthy:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "unhealthy: status", resp.StatusCode)
		return 1
	}
	return 0
}
