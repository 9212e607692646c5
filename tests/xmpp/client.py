#!/usr/bin/python3
"""A real XMPP client (slixmpp) for the gateway tests, driven as a child
process: commands arrive on stdin and events leave on stdout, one JSON
object per line.

Usage: client.py JID PASSWORD HOST PORT

Events written:
  {"event": "ready"}                          logged in, initial presence sent
  {"event": "message", "from", "to", "type", "body", "subject", "thread",
   "id", "e2e", "error"}                      a message stanza arrived
  {"event": "presence", "from", "type", "show", "status"}
  {"event": "sent", "tag"}                    a command was carried out
  {"event": "failed", "why"}                  login failed (then exit 1)

Commands read:
  {"cmd": "message", "to", "body"?, "subject"?, "thread"?, "type"?, "e2e"?,
   "tag"?}                                    send a message
  {"cmd": "echo", "on": bool}                 answer every chat message by
                                              sending it back to its sender
                                              (body, subject, thread, type and
                                              <e2e/> text unchanged)
  {"cmd": "presence", "to"?, "type"?, "tag"?} send presence (subscribe,
                                              subscribed, unavailable, ...)
  {"cmd": "flood", "to", "count", "prefix"?}  send count chat messages "prefix n"
  {"cmd": "roster"}                           report the roster: {"event":
                                              "roster", "items": {jid: subscription}}
  {"cmd": "quit"}                             disconnect and exit
"""

import asyncio
import json
import os
import sys
import traceback

import slixmpp
from slixmpp.xmlstream import ET
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

E2E_NS = "urn:ietf:params:xml:ns:xmpp-e2e"
STANZAS_NS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password)
        self.echo = False
        self.add_event_handler("session_start", self.on_start)
        # slixmpp's "message" event needs a <body/>; protected messages
        # carry only <e2e/>, so take every message stanza.
        self.register_handler(Callback(
            "every message", MatchXPath("{jabber:client}message"), self.on_message))
        self.add_event_handler("failed_auth", self.on_failed)
        for kind in ("presence_available", "presence_unavailable",
                     "presence_subscribe", "presence_subscribed",
                     "presence_unsubscribe", "presence_unsubscribed",
                     "presence_error"):
            self.add_event_handler(kind, self.on_presence)
        # The tests decide about subscriptions themselves (None: slixmpp
        # neither accepts nor refuses; False would refuse at once).
        self.roster.auto_authorize = None
        self.roster.auto_subscribe = False

    async def on_start(self, _event):
        # With the roster requested, the server pushes its changes.
        await self.get_roster()
        self.send_presence()
        emit({"event": "ready"})
        # asyncio keeps only weak references to tasks: hold this one, or
        # the garbage collector may destroy it while it waits for input.
        self.command_task = asyncio.ensure_future(self.read_commands())

    def on_failed(self, _event):
        emit({"event": "failed", "why": "authentication"})
        sys.exit(1)

    def on_message(self, msg):
        e2e = msg.xml.find("{%s}e2e" % E2E_NS)
        error = None
        if msg["type"] == "error":
            # Read the condition ourselves: slixmpp knows only RFC 3920's
            # list, which lacks e.g. policy-violation (RFC 6120 §8.3.3.12).
            element = msg.xml.find("{jabber:client}error")
            for child in (element if element is not None else []):
                if child.tag.startswith("{%s}" % STANZAS_NS) and not child.tag.endswith("}text"):
                    error = child.tag.split("}", 1)[1]
        emit({
            "event": "message",
            "from": str(msg["from"]),
            "to": str(msg["to"]),
            "type": msg["type"],
            "body": msg["body"],
            "subject": msg["subject"],
            "thread": msg["thread"],
            "id": msg["id"],
            "e2e": e2e.text if e2e is not None else None,
            "error": error,
        })
        if self.echo and msg["type"] != "error":
            try:
                self.echo_back(msg, e2e)
            except Exception:  # a test helper: report, keep running
                traceback.print_exc()

    def echo_back(self, msg, e2e):
        """Sends msg back to its sender: body, subject, thread, type and
        the <e2e/> text unchanged."""
        reply = self.make_message(mto=msg["from"], mtype=msg["type"])
        if msg["body"]:
            reply["body"] = msg["body"]
        if msg["subject"]:
            reply["subject"] = msg["subject"]
        if msg["thread"]:
            reply["thread"] = msg["thread"]
        if e2e is not None:
            element = ET.SubElement(reply.xml, "{%s}e2e" % E2E_NS)
            element.text = e2e.text
        reply.send()

    def on_presence(self, pres):
        emit({
            "event": "presence",
            "from": str(pres["from"]),
            "type": pres["type"],
            "show": pres["show"],
            "status": pres["status"],
        })

    async def quit(self):
        self.disconnect()
        await asyncio.sleep(0.3)
        os._exit(0)

    async def read_commands(self):
        loop = asyncio.get_event_loop()
        reader = asyncio.StreamReader()
        self.stdin_pipe = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                await self.quit()
            command = json.loads(line)
            kind = command["cmd"]
            if kind == "quit":
                await self.quit()
            if kind == "echo":
                self.echo = bool(command["on"])
            elif kind == "message":
                msg = self.make_message(mto=command["to"], mtype=command.get("type", "chat"))
                for field in ("body", "subject", "thread"):
                    if command.get(field) is not None:
                        msg[field] = command[field]
                if command.get("e2e") is not None:
                    element = ET.SubElement(msg.xml, "{%s}e2e" % E2E_NS)
                    element.text = command["e2e"]
                msg.send()
            elif kind == "flood":
                for n in range(int(command["count"])):
                    msg = self.make_message(mto=command["to"], mtype="chat")
                    msg["body"] = "%s %d" % (command.get("prefix", "flood"), n)
                    msg.send()
                    if n % 100 == 99:
                        await asyncio.sleep(0)
            elif kind == "roster":
                emit({"event": "roster", "items": {
                    str(jid): self.client_roster[jid]["subscription"]
                    for jid in self.client_roster}})
            elif kind == "presence":
                self.send_presence(pto=command.get("to"), ptype=command.get("type"))
            emit({"event": "sent", "tag": command.get("tag")})


def main():
    jid, password, host, port = sys.argv[1:5]
    client = Client(jid, password)
    client.register_plugin("xep_0199")
    # Loopback Prosody without certificates: no STARTTLS offered.
    client["feature_mechanisms"].unencrypted_plain = True
    client.connect((host, int(port)), disable_starttls=True)
    client.add_event_handler("disconnected", lambda _e: client.loop.stop())
    client.loop.run_forever()


if __name__ == "__main__":
    main()
