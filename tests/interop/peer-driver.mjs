// Drives a JSON-lines peer (js-peer.mjs, or wisp-node --json) from a test:
// spawns it, collects its events, sends commands, and waits for events with
// deadlines (never sleeps to synchronize).
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'

export class JsonPeer {
  // name labels the log lines; argv[0] is the program. With log set, every
  // event and command is echoed as "name< {...}" / "name> {...}".
  constructor (name, argv, { log = true, env = process.env } = {}) {
    this.name = name
    this.log = log
    this.events = [] // every event, in arrival order
    this.times = [] // Date.now() at each event's arrival
    this.taken = new Set() // indexes of events handed out by expect()
    this.waiters = new Set()
    this.exit = null // { code, signal } once the process is gone
    this.child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env })
    this.exited = new Promise((resolve) => {
      // 'close', not 'exit': 'exit' can come before the last stdout lines
      // are read, and a waiter would then see the process gone before the
      // event it waits for (its "quit", say). 'close' comes after stdout
      // and stderr ended, so every line has been dispatched by then.
      this.child.on('close', (code, signal) => {
        this.exit = { code, signal }
        if (this.log) console.log(`${name}: exited code ${code} signal ${signal}`)
        for (const w of this.waiters) w.check()
        resolve(this.exit)
      })
    })
    this.child.on('error', (err) => {
      this.exit = { code: null, signal: null, error: err.message }
      for (const w of this.waiters) w.check()
    })
    // Commands written after the peer died must not kill the test with EPIPE.
    this.child.stdin.on('error', () => {})
    createInterface({ input: this.child.stdout, crlfDelay: Infinity }).on('line', (line) => {
      let ev
      try {
        ev = JSON.parse(line)
      } catch {
        ev = { event: 'unparsed', line }
      }
      if (this.log) console.log(`${name}< ${line}`)
      this.events.push(ev)
      this.times.push(Date.now())
      for (const w of this.waiters) w.check()
    })
    createInterface({ input: this.child.stderr, crlfDelay: Infinity }).on('line', (line) => {
      console.log(`${name}! ${line}`)
    })
  }

  send (cmd) {
    const line = JSON.stringify(cmd)
    if (this.log) console.log(`${this.name}> ${line}`)
    this.child.stdin.write(line + '\n')
  }

  // Resolves to the first event not yet taken that satisfies pred (an
  // object of fields to match, or a function of the event and its index in
  // this.events), marking it taken. Rejects
  // when timeoutMs passes or the process exits first.
  expect (pred, timeoutMs, what = JSON.stringify(pred)) {
    const match = typeof pred === 'function'
      ? pred
      : (ev) => Object.entries(pred).every(([k, v]) => ev[k] === v)
    return new Promise((resolve, reject) => {
      const w = {
        check: () => {
          for (let i = 0; i < this.events.length; i++) {
            if (!this.taken.has(i) && match(this.events[i], i)) {
              this.taken.add(i)
              done()
              resolve(this.events[i])
              return
            }
          }
          if (this.exit != null) {
            done()
            reject(new Error(`${this.name}: exited (${JSON.stringify(this.exit)}) while waiting for ${what}`))
          }
        }
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`${this.name}: no ${what} within ${timeoutMs} ms`))
      }, timeoutMs)
      const done = () => {
        clearTimeout(timer)
        this.waiters.delete(w)
      }
      this.waiters.add(w)
      w.check()
    })
  }

  // Resolves when cond() returns true; cond is evaluated now and after every
  // event (keep it cheap: scan only the events it has not seen yet). Rejects
  // when timeoutMs passes or the process exits first. Takes no events.
  until (cond, timeoutMs, what = 'condition') {
    return new Promise((resolve, reject) => {
      const w = {
        check: () => {
          let ok
          try {
            ok = cond()
          } catch (err) {
            done()
            reject(err)
            return
          }
          if (ok) {
            done()
            resolve()
          } else if (this.exit != null) {
            done()
            reject(new Error(`${this.name}: exited (${JSON.stringify(this.exit)}) while waiting for ${what}`))
          }
        }
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`${this.name}: no ${what} within ${timeoutMs} ms`))
      }, timeoutMs)
      const done = () => {
        clearTimeout(timer)
        this.waiters.delete(w)
      }
      this.waiters.add(w)
      w.check()
    })
  }

  // Sends a command tagged with a fresh id and waits for its result: the
  // event named `event` (or any of an array of names) or an error event, all
  // carrying that id.
  async request (cmd, event, timeoutMs) {
    const id = `${cmd.cmd}-${++JsonPeer.seq}`
    const names = Array.isArray(event) ? event : [event]
    this.send({ ...cmd, id })
    const ev = await this.expect((e) => e.id === id && (names.includes(e.event) || e.event === 'error'),
      timeoutMs, `${names.join('|')} for ${id}`)
    if (ev.event === 'error') throw new Error(`${this.name}: ${cmd.cmd} failed: ${ev.message}`)
    return ev
  }

  errors () {
    return this.events.filter((e) => e.event === 'error')
  }

  // Waits up to timeoutMs for the process to exit, then kills it (by its own
  // pid) and waits for that.
  async stop (timeoutMs) {
    if (this.exit != null) return this.exit
    let timer
    const late = new Promise((resolve) => { timer = setTimeout(resolve, timeoutMs, 'late') })
    const r = await Promise.race([this.exited, late])
    clearTimeout(timer)
    if (r !== 'late') return r
    this.child.kill('SIGKILL')
    await this.exited
    return { ...this.exit, killed: true }
  }
}
JsonPeer.seq = 0
