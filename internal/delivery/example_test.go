package delivery_test

import (
	"context"
	"fmt"
	"time"

	"github.com/mailproxy/mailproxy/internal/delivery"
	"github.com/mailproxy/mailproxy/internal/smtppool"
	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

func ExampleSender_Send() {
	srv, err := testsmtp.New(testsmtp.Options{Faults: []testsmtp.Fault{
		testsmtp.Reply(testsmtp.StageRcpt, 550, "5.1.1", "no such user").ForRcpt("nobody@example.net"),
	}})
	if err != nil || srv.Start() != nil {
		fmt.Println("server:", err)
		return
	}
	defer srv.Close()

	pool := smtppool.New(smtppool.Options{})
	defer pool.Close(context.Background())
	sender, err := delivery.NewSender(delivery.SenderOptions{Pool: pool})
	if err != nil {
		fmt.Println(err)
		return
	}
	acct := store.Account{TenantID: "acme", ID: "main", Host: srv.Host(), Port: srv.Port(), UseTLS: new(bool), TLSVerify: true}
	msg, err := delivery.Build(store.Payload{
		ID: "invoice-1", From: "Billing <billing@example.com>",
		To: []string{"customer@example.net", "nobody@example.net"}, Subject: "Your invoice", Body: "Hello",
	}, "6f1c0c8e", nil, time.Now())
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := sender.Send(context.Background(), acct, msg)
	if err != nil {
		fmt.Println("failed:", err, "permanent:", delivery.Classify(err).Permanent)
		return
	}
	fmt.Println("accepted:", res.Accepted)
	fmt.Println("refused:", res.Refused)

	// A reply error says whether to retry.
	msg, err = delivery.Build(store.Payload{
		ID: "invoice-2", From: "billing@example.com", To: []string{"nobody@example.net"},
	}, "9a2b", nil, time.Now())
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = sender.Send(context.Background(), acct, msg)
	de := delivery.Classify(err)
	fmt.Println(de, "permanent:", de.Permanent)
	// Output:
	// accepted: [customer@example.net]
	// refused: [{nobody@example.net 550 5.1.1 no such user}]
	// 5.1.1 no such user (SMTP 550) permanent: true
}
