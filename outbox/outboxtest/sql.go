package outboxtest

import (
	"strings"

	"github.com/jackc/pgx/v5"
)

// schemaPlaceholder is the text [SQL] replaces with a quoted schema name.
const schemaPlaceholder = "{{schema}}"

// SQL returns sql with every {{schema}} replaced by schema as a quoted
// identifier, so a test writes its raw SQL as one template:
//
//	outboxtest.SQL(st.Schema(), `SELECT count(*) FROM {{schema}}.attempts WHERE outcome = $1`)
//
// The schema name is quoted (pgx.Identifier{schema}.Sanitize()), never
// spliced as is; the values in the query stay parameters.
func SQL(schema, sql string) string {
	return strings.ReplaceAll(sql, schemaPlaceholder, pgx.Identifier{schema}.Sanitize())
}
