package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"zsm.dev/zsm/sdk/keys"
)

// readLine reads the next line of stdin (without its line ending).
func (a *app) readLine(what string) (string, error) {
	if a.lines == nil {
		a.lines = bufio.NewReader(a.stdin)
	}
	s, err := a.lines.ReadString('\n')
	if err != nil && (err != io.EOF || s == "") {
		return "", usageErr("pipe it in: printf '%s\\n' … | zsm …", "no %s on standard input", what)
	}
	return strings.TrimRight(s, "\r\n"), nil
}

// stdinTTY is the terminal to prompt on, if stdin is one.
func (a *app) stdinTTY() (*os.File, bool) {
	f, ok := a.stdin.(*os.File)
	return f, ok && term.IsTerminal(int(f.Fd()))
}

// promptSecret asks on the terminal without echo.
func (a *app) promptSecret(prompt string) (string, error) {
	f, ok := a.stdinTTY()
	if !ok {
		return "", fmt.Errorf("no terminal to ask on")
	}
	fmt.Fprint(a.stderr, prompt)
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(a.stderr)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func (a *app) prompt(prompt string) (string, error) {
	if _, ok := a.stdinTTY(); !ok {
		return "", fmt.Errorf("no terminal to ask on")
	}
	fmt.Fprint(a.stderr, prompt)
	return a.readLine("answer")
}

// password gets the password: first line of stdin (--password-stdin),
// $ZSM_PASSWORD, or a prompt without echo (twice when confirm is set).
func (a *app) password(fromStdin, confirm bool) (string, error) {
	if fromStdin {
		p, err := a.readLine("password")
		if err != nil {
			return "", err
		}
		if p == "" {
			return "", usageErr("", "the password on standard input is empty")
		}
		return p, nil
	}
	if p := os.Getenv("ZSM_PASSWORD"); p != "" {
		return p, nil
	}
	if _, ok := a.stdinTTY(); !ok {
		return "", usageErr("use --password-stdin or set ZSM_PASSWORD (zsm never takes a password as an argument)", "no password given and no terminal to ask for one")
	}
	p, err := a.promptSecret("Password: ")
	if err != nil {
		return "", err
	}
	if p == "" {
		return "", usageErr("", "the password must not be empty")
	}
	if confirm {
		q, err := a.promptSecret("Password again: ")
		if err != nil {
			return "", err
		}
		if p != q {
			return "", usageErr("type the same password twice", "the passwords differ")
		}
	}
	return p, nil
}

// secretKey gets the Secret Key: $ZSM_SECRET_KEY, the next line of stdin
// (--secret-key-stdin), the one stored on this device, or a prompt.
func (a *app) secretKey(fromStdin bool, h *home, server, id string, stored *account) (keys.SecretKey, bool, error) {
	if fromStdin {
		t, err := a.readLine("Secret Key")
		if err != nil {
			return keys.SecretKey{}, false, err
		}
		sk, err := keys.ParseSecretKey(t)
		return sk, false, err
	}
	if t := os.Getenv("ZSM_SECRET_KEY"); t != "" {
		sk, err := keys.ParseSecretKey(t)
		return sk, false, err
	}
	acct := accountKey(server, id)
	if stored != nil && stored.SecretKeyIn != "" {
		if sk, ok := h.storedSecretKey(acct, stored.SecretKeyIn); ok {
			return sk, true, nil
		}
	}
	if _, ok := a.stdinTTY(); ok {
		t, err := a.promptSecret("Secret Key (ZSM1-…, from your emergency kit): ")
		if err != nil {
			return keys.SecretKey{}, false, err
		}
		sk, err := keys.ParseSecretKey(t)
		return sk, false, err
	}
	return keys.SecretKey{}, false, &cliError{code: ExitAuth, msg: "this device has no Secret Key for " + id + " on " + server,
		hint: "set ZSM_SECRET_KEY or pass --secret-key-stdin (the key is in your emergency kit)"}
}

// identity picks the account: argument, --identity, $ZSM_IDENTITY, the last
// one used on this server, or a prompt.
func (a *app) identity(args []string, accts *accountsFile, server string) (string, error) {
	switch {
	case len(args) > 0 && args[0] != "":
		return args[0], nil
	case a.identityFlag != "":
		return a.identityFlag, nil
	case os.Getenv("ZSM_IDENTITY") != "":
		return os.Getenv("ZSM_IDENTITY"), nil
	}
	if last := accts.Accounts[accts.Last]; last != nil && last.Server == server {
		return last.Identity, nil
	}
	if id, err := a.prompt("Identity (e-mail): "); err == nil && id != "" {
		return strings.TrimSpace(id), nil
	}
	return "", usageErr("pass --identity or set ZSM_IDENTITY", "which account? No identity given")
}
