package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/posener/complete"
	"github.com/willabides/kongplete"
)

// Shell completion works the way posener/complete (through kongplete) defines it:
// the shell runs mail-proxy itself with COMP_LINE (and COMP_POINT) set, and
// mail-proxy prints the candidate words, one a line. `completion SHELL` prints
// the few lines that register this with bash, zsh or fish.

type completionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"bash, zsh or fish."`
}

func (c *completionCmd) Run(e *env) error {
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("completion: find this program: %w", err)
	}
	if abs, err := filepath.Abs(bin); err == nil {
		bin = abs
	}
	script, err := completionScript(c.Shell, "mail-proxy", bin)
	if err != nil {
		return err
	}
	_, err = fmt.Fprint(e.stdout, script)
	return err
}

// completionScript registers bin as the completer of command cmd in shell.
func completionScript(shell, cmd, bin string) (string, error) {
	q := strconv.Quote(bin)
	switch shell {
	case "bash":
		return fmt.Sprintf("# mail-proxy completion for bash: eval \"$(mail-proxy completion bash)\" (e.g. in ~/.bashrc)\ncomplete -C %s %s\n", q, cmd), nil
	case "zsh":
		return fmt.Sprintf("# mail-proxy completion for zsh: eval \"$(mail-proxy completion zsh)\" (e.g. in ~/.zshrc)\n"+
			"autoload -U +X bashcompinit && bashcompinit\ncomplete -o nospace -C %s %s\n", q, cmd), nil
	case "fish":
		fn := "__" + strings.ReplaceAll(cmd, "-", "_") + "_complete"
		return fmt.Sprintf("# mail-proxy completion for fish: mail-proxy completion fish | source\n"+
			"function %s\n"+
			"    set -lx COMP_LINE (commandline -cp)\n"+
			"    test -z (commandline -ct)\n"+
			"    and set COMP_LINE \"$COMP_LINE \"\n"+
			"    %s\n"+
			"end\n"+
			"complete -f -c %s -a \"(%s)\"\n", fn, q, cmd, fn), nil
	}
	return "", usageErrorf("completion: unknown shell %q (want bash, zsh or fish)", shell)
}

// completeLine prints the completions of the command line the shell passed in
// COMP_LINE, cut at COMP_POINT.
func completeLine(parser *kong.Kong, line, point string, e *env) int {
	if p, err := strconv.Atoi(point); err == nil && p >= 0 && p < len(line) {
		line = line[:p]
	}
	cmd, err := kongplete.Command(parser)
	if err != nil {
		fmt.Fprintf(e.stderr, "mail-proxy: completion: %v\n", err)
		return ExitFailed
	}
	args := completionArgs(line)
	for _, option := range cmd.Predict(args) {
		if strings.HasPrefix(option, args.Last) {
			fmt.Fprintln(e.stdout, option)
		}
	}
	return ExitOK
}

// completionArgs splits a command line as posener/complete does: the program
// name dropped, the last word empty when the line ends in a space.
func completionArgs(line string) complete.Args {
	parts := strings.Fields(line)
	if line != "" && strings.ContainsAny(line[len(line)-1:], " \t") {
		parts = append(parts, "")
	}
	if len(parts) == 0 {
		return complete.Args{}
	}
	all := parts[1:]
	var a complete.Args
	a.All = all
	if len(all) > 0 {
		a.Last = all[len(all)-1]
		a.Completed = all[:len(all)-1]
	}
	if len(a.Completed) > 0 {
		a.LastCompleted = a.Completed[len(a.Completed)-1]
	}
	return a
}
