package config

import (
	"reflect"
	"strconv"
	"strings"
)

// Variable describes one configuration variable, read from the Config struct tags.
type Variable struct {
	Name    string // environment variable, e.g. GMP_PORT
	Field   string // Config field name, e.g. Port
	Default string // default as configured ("" when none)
	INIKey  string // key in the [mail_proxy] section; "" when the file cannot set it
	Doc     string
	Secret  bool   // masked when printed
	DSN     bool   // a database DSN: printed with its password masked
	Alias   string // alternative environment variable, e.g. GMP_INSTANCE
	index   int    // field index in Config
}

// aliases maps an alternative variable to the one it stands for; the primary name wins when both are set.
func aliases() map[string]string {
	return map[string]string{
		"GMP_INSTANCE": "GMP_INSTANCE_NAME",
		"GMP_CONFIG":   "GMP_CONFIG_FILE",
	}
}

// Variables lists every configuration variable in the order of the Config struct.
func Variables() []Variable {
	aliasOf := map[string]string{}
	for alias, primary := range aliases() {
		aliasOf[primary] = alias
	}
	t := reflect.TypeFor[Config]()
	vars := make([]Variable, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		if name == "" || name == "-" {
			continue
		}
		def := f.Tag.Get("envDefault")
		if d, ok := f.Tag.Lookup("docDefault"); ok {
			def = d
		}
		ini := f.Tag.Get("ini")
		if ini == "-" {
			ini = ""
		}
		vars = append(vars, Variable{
			Name:    name,
			Field:   f.Name,
			Default: def,
			INIKey:  ini,
			Doc:     f.Tag.Get("doc"),
			Secret:  f.Tag.Get("secret") == "true",
			DSN:     f.Tag.Get("secret") == "dsn",
			Alias:   aliasOf[name],
			index:   i,
		})
	}
	return vars
}

// Value formats the variable's current value in cfg the way it would be configured
// (unmasked: callers printing it mask secrets themselves).
func (v Variable) Value(cfg Config) string {
	return formatValue(reflect.ValueOf(cfg).Field(v.index))
}

func formatValue(rv reflect.Value) string {
	if s, ok := rv.Interface().(Seconds); ok {
		return s.String()
	}
	switch rv.Kind() {
	case reflect.String:
		return rv.String()
	case reflect.Bool:
		return strconv.FormatBool(rv.Bool())
	case reflect.Int, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10)
	case reflect.Float64:
		return strconv.FormatFloat(rv.Float(), 'f', -1, 64)
	case reflect.Slice:
		parts := make([]string, rv.Len())
		for i := range rv.Len() {
			parts[i] = formatValue(rv.Index(i))
		}
		return strings.Join(parts, ",")
	default:
		return ""
	}
}
