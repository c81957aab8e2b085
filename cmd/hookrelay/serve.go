package main

import (
	"context"
	"io"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/sidecar"
)

const runUsage = `
Usage: hookrelay [run]

Runs the relay: it serves health, metrics and the admin API on
HOOKRELAY_LISTEN_ADDR (metrics on HOOKRELAY_METRICS_ADDR when set) from the
start, waits for the database, applies migrations (unless
HOOKRELAY_MIGRATE_ON_START is false), tails the outbox and delivers webhooks.
SIGINT or SIGTERM drains in-flight deliveries (for up to
HOOKRELAY_SHUTDOWN_TIMEOUT) and exits 0.
`

// runServe runs `hookrelay run`.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := newCommand("run", runUsage, stdout, stderr).parseConfig(args)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	log.Info("starting hookrelay", zap.String("version", relay.Version), zap.Object("config", cfg))
	sc, err := sidecar.New(cfg, sidecar.Options{Log: log})
	if err != nil {
		return err
	}
	if err := sc.Run(ctx); err != nil {
		log.Error("hookrelay stopped with an error", zap.Error(err))
		return err
	}
	log.Info("hookrelay stopped")
	return nil
}

// newLogger builds the process logger: JSON (or console) on w at
// cfg.LogLevel.
func newLogger(cfg config.Config, w io.Writer) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(cfg.LogLevel)
	if err != nil {
		return nil, &config.Error{Problems: []config.Problem{{Var: "HOOKRELAY_LOG_LEVEL", Message: err.Error()}}}
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	encCfg.TimeKey = "time"
	var enc zapcore.Encoder
	if cfg.LogFormat == "console" {
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level)
	return zap.New(core, zap.ErrorOutput(zapcore.Lock(zapcore.AddSync(w)))), nil
}
