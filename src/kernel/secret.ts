// A secret value that cannot leak by accident: it stringifies, serialises and inspects as
// "[redacted]". Code that really needs the value calls `reveal()`, which is easy to grep for.
export class Secret {
  readonly #value: string

  constructor(value: string) {
    this.#value = value
  }

  reveal(): string {
    return this.#value
  }

  /** Length in UTF-8 bytes, the unit the HMAC key and the contract's 32-byte rule use. */
  get byteLength(): number {
    return new TextEncoder().encode(this.#value).byteLength
  }

  equals(other: Secret | undefined): boolean {
    return other !== undefined && other.#value === this.#value
  }

  toString(): string {
    return '[redacted]'
  }

  toJSON(): string {
    return '[redacted]'
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return 'Secret([redacted])'
  }
}
