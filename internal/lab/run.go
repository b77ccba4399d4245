package lab

import (
	"context"
	"fmt"
)

// Run builds a lab for the scenario, shows the stall without go-pmtud,
// starts go-pmtud on every node, repeats the download and measures. Unless
// cfg.Keep, the lab is removed before Run returns (also on failure and
// when ctx is cancelled); with Keep the built lab is returned.
func Run(ctx context.Context, sc Scenario, cfg RunConfig) (res Result, kept *Lab) {
	res.Scenario = sc
	if ok, why := sc.Applicable(); !ok {
		res.Skipped = why
		return res, nil
	}
	r := &runner{ctx: ctx, sc: sc, cfg: cfg.withDefaults(), res: &res}
	l, err := Build(ctx, Options{Fabric: sc.Fabric, Receiver: sc.Receiver, FileSize: r.cfg.FileSize})
	if err != nil {
		res.Err = err
		return res, nil
	}
	r.l = l
	res.Prefix = l.Prefix
	res.Limitation = sc.KnownLimitation()
	defer func() {
		if cfg.Keep && ctx.Err() == nil {
			kept = l
			return
		}
		if err := l.Close(); err != nil {
			res.problem("teardown: %v", err)
		}
		if left, _ := ListNamespaces(l.Prefix); len(left) > 0 {
			res.problem("namespaces left after teardown: %v", left)
		}
	}()
	r.say("topology built: namespaces %s-{client,router,node1..3%s}; TCP to %s -> %s (owner), ICMP to it -> %s%s",
		l.Prefix, map[bool]string{true: ",pod1..3"}[sc.Receiver == ReceiverPod], VIP(sc.Family), NodeName(l.Owner), NodeName(l.ICMPTo),
		map[bool]string{true: " on its second uplink " + ifUplink2}[sc.Fabric == FabricDual])
	for _, phase := range []func() error{r.stall, ctx.Err, r.start, r.relayed} {
		if err := phase(); err != nil {
			res.Err = err
			return res, nil
		}
	}
	r.expect()
	r.stop()
	return res, nil
}

// runner is one scenario run: its phases share the lab, the daemons and
// the result.
type runner struct {
	ctx context.Context
	sc  Scenario
	cfg RunConfig
	l   *Lab
	ds  []*Daemon
	res *Result
}

func (r *runner) say(format string, args ...any) {
	if r.cfg.Progress != nil {
		r.cfg.Progress(fmt.Sprintf(format, args...))
	}
}

// stall: without go-pmtud the router's messages land on the wrong node and
// the download stalls.
func (r *runner) stall() error {
	l, f, res := r.l, r.sc.Family, r.res
	p0, err := l.RouterPTBs(f)
	if err != nil {
		return err
	}
	in0 := l.nodesPTBsIn(f)
	res.Stall = l.Get(r.ctx, f, 0, r.cfg.StallTimeout)
	p1, _ := l.RouterPTBs(f)
	res.StallPTBs = p1 - p0
	in1 := l.nodesPTBsIn(f)
	for i := range in1 {
		res.StallLanded[i] = in1[i] - in0[i]
	}
	if res.StallLanded[l.Owner] != 0 || res.StallLanded[l.ICMPTo] == 0 {
		res.problem("router messages landed %v, want all on %s", res.StallLanded, NodeName(l.ICMPTo))
	}
	if res.Stall.Complete {
		res.problem("download completed without go-pmtud (%v): the lab does not reproduce the black hole", res.Stall)
	} else {
		r.say("without go-pmtud: stalled at %d of %d bytes after %.1f s (the router sent %d %s; arrived per node: %v)",
			res.Stall.Bytes, res.Stall.Want, res.Stall.Elapsed.Seconds(), res.StallPTBs, ptbName(f), res.StallLanded)
	}
	return nil
}

// start runs go-pmtud on every node (behind the operator's rule if asked).
func (r *runner) start() error {
	dc := DaemonConfig{Binary: r.cfg.Binary, Transport: r.sc.Transport, Args: r.cfg.Args}
	if r.cfg.OperatorRule {
		if err := r.l.InstallOperatorRules(33); err != nil {
			return err
		}
		dc.Firewall = "none"
		r.say("the operator's own rule installed on every node: NFLOG group 33 for every PTB on %s, no loop guard, default batching", ifUplink)
	}
	ds, err := r.l.StartDaemons(r.ctx, dc)
	if err != nil {
		return err
	}
	r.ds = ds
	r.say("go-pmtud started on node1..3 (transport %s) and ready", r.sc.Transport)
	return nil
}

// relayed downloads again with go-pmtud running and measures.
func (r *runner) relayed() error {
	l, f, res := r.l, r.sc.Family, r.res
	var err error
	if res.PMTUBefore, err = l.FlowPMTU(f, 0); err != nil {
		return err
	}
	p2, _ := l.RouterPTBs(f)
	fin0, _ := l.FlowNS().PTBsIn(f)
	inv0, _ := l.Nodes[l.Owner].ConntrackICMPErrors()
	res.Relayed = l.Get(r.ctx, f, 0, r.cfg.DownloadTimeout)
	if res.Relayed.Complete {
		r.say("with go-pmtud: complete, %d bytes in %.3f s", res.Relayed.Bytes, res.Relayed.Elapsed.Seconds())
	} else {
		if res.Limitation == "" {
			res.problem("download with go-pmtud did not complete: %v", res.Relayed)
		}
		r.say("with go-pmtud: NOT complete: %v", res.Relayed)
	}
	// Count once every daemon has decided all it received.
	if _, ok := settle(r.ds); !ok {
		res.problem("daemons did not settle (received packets still undecided) within 2 s")
	}
	p3, _ := l.RouterPTBs(f)
	res.RouterPTBs = p3 - p2
	fin1, _ := l.FlowNS().PTBsIn(f)
	inv1, _ := l.Nodes[l.Owner].ConntrackICMPErrors()
	res.FlowPTBsIn, res.OwnerCtICMPErrors = fin1-fin0, inv1-inv0
	if res.PMTUAfter, err = l.FlowPMTU(f, 0); err != nil {
		res.problem("%v", err)
	}
	r.scrape()
	r.say("PMTU toward the client where the flow lives (%s): before %s, after %s",
		l.FlowNS().Name, mtuString(res.PMTUBefore), mtuString(res.PMTUAfter))
	r.say("router sent %d %s; frames relayed per node %v = %.2f per message (peers: %d); send errors per node %v",
		res.RouterPTBs, ptbName(f), res.Frames, res.FramesPerPTB(), NumNodes-1, res.SendErrors)
	r.say("%s received %d %s; ICMP errors conntrack refused to relate on %s: %d",
		l.FlowNS().Name, res.FlowPTBsIn, ptbName(f), NodeName(l.Owner), res.OwnerCtICMPErrors)
	return nil
}

func (r *runner) scrape() {
	for i, d := range r.ds {
		m, err := d.Scrape(r.ctx)
		if err != nil {
			r.res.problem("%v", err)
			continue
		}
		r.res.Frames[i] = m.Sum("gopmtud_frames_sent_total")
		r.res.Received[i] = m.Sum("gopmtud_packets_received_total")
		r.res.Relays[i] = m.Sum("gopmtud_messages_relayed_total")
		r.res.SendErrors[i] = m.Sum("gopmtud_send_errors_total")
	}
}

// expect checks the measurements against what the cell must show.
func (r *runner) expect() {
	l, res := r.l, r.res
	if res.PMTUBefore != 0 {
		res.problem("PMTU before the relayed download is %d, want none", res.PMTUBefore)
	}
	switch {
	case res.Limitation == "" && res.PMTUAfter != l.NarrowMTU:
		res.problem("PMTU after is %s, want %d", mtuString(res.PMTUAfter), l.NarrowMTU)
	case res.Limitation != "" && (res.Relayed.Complete || res.PMTUAfter != 0):
		res.problem("known limitation no longer holds (download %v, PMTU %s): update Scenario.KnownLimitation and the docs", res.Relayed, mtuString(res.PMTUAfter))
	case res.Limitation != "":
		r.say("known limitation, as expected: %s", res.Limitation)
	}
	if res.FramesTotal() == 0 {
		res.problem("no frames relayed%s", l.dualHomedWhy(res))
	}
	if res.FramesPerPTB() > float64(NumNodes-1) {
		res.problem("%.2f frames per router message > %d peers: amplification", res.FramesPerPTB(), NumNodes-1)
	}
	for i := range r.ds {
		if i != l.ICMPTo && res.Frames[i] > 0 {
			res.problem("%s relayed %v frames: only %s receives the router's messages, so this is a relayed copy relayed again", NodeName(i), res.Frames[i], NodeName(l.ICMPTo))
		}
	}
}

// stop: go-pmtud stops cleanly and takes its nftables table with it.
func (r *runner) stop() {
	l, res := r.l, r.res
	for i, d := range r.ds {
		res.DaemonLogs[i] = tail(d.Log(), 15)
	}
	if err := l.StopDaemons(); err != nil {
		res.problem("%v", err)
	}
	for i := range l.Nodes {
		ts, err := l.DaemonTables(i)
		if err != nil {
			res.problem("%v", err)
		}
		for _, t := range ts {
			res.LeftTables = append(res.LeftTables, NodeName(i)+": "+t)
		}
	}
	if len(res.LeftTables) > 0 {
		res.problem("nftables tables left after SIGTERM: %v", res.LeftTables)
	}
	if res.OK() {
		r.say("go-pmtud stopped; no nftables table left")
	}
}
