/**
 * Struct layouts from the BTF that clang writes into a BPF object (the .BTF section of a 64-bit
 * little-endian ELF file): name -> { size, members: name -> byte offset }. Test-only, and small:
 * enough of ELF and BTF to compare bpf/pping.h with src/pping/bpf-layout.ts.
 */
import { readFileSync } from 'node:fs';

export interface StructLayout {
  size: number;
  members: Map<string, number>;
}

function section(elf: Buffer, want: string): Buffer {
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) throw new Error('not a 64-bit little-endian ELF file');
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  const shstrndx = elf.readUInt16LE(0x3e);
  const sh = (i: number) => {
    const o = shoff + i * shentsize;
    return { name: elf.readUInt32LE(o), off: Number(elf.readBigUInt64LE(o + 0x18)), size: Number(elf.readBigUInt64LE(o + 0x20)) };
  };
  const strs = sh(shstrndx);
  for (let i = 0; i < shnum; i++) {
    const s = sh(i);
    const end = elf.indexOf(0, strs.off + s.name);
    if (elf.toString('latin1', strs.off + s.name, end) === want) return elf.subarray(s.off, s.off + s.size);
  }
  throw new Error(`no ${want} section`);
}

/** Every named struct in the object's BTF. */
export function btfStructs(path: string): Map<string, StructLayout> {
  const btf = section(readFileSync(path), '.BTF');
  if (btf.readUInt16LE(0) !== 0xeb9f) throw new Error('bad BTF magic');
  const hdrLen = btf.readUInt32LE(4);
  const typeOff = hdrLen + btf.readUInt32LE(8);
  const typeEnd = typeOff + btf.readUInt32LE(12);
  const strOff = hdrLen + btf.readUInt32LE(16);
  const str = (o: number) => btf.toString('latin1', strOff + o, btf.indexOf(0, strOff + o));
  const out = new Map<string, StructLayout>();
  for (let p = typeOff; p < typeEnd; ) {
    const nameOff = btf.readUInt32LE(p);
    const info = btf.readUInt32LE(p + 4);
    const size = btf.readUInt32LE(p + 8);
    const vlen = info & 0xffff;
    const kind = (info >>> 24) & 0x1f;
    const kindFlag = info >>> 31;
    p += 12;
    switch (kind) {
      case 4: // STRUCT
      case 5: {
        // UNION
        const members = new Map<string, number>();
        for (let i = 0; i < vlen; i++, p += 12) {
          const bits = btf.readUInt32LE(p + 8);
          members.set(str(btf.readUInt32LE(p)), (kindFlag ? bits & 0xffffff : bits) / 8);
        }
        if (kind === 4 && nameOff) out.set(str(nameOff), { size, members });
        break;
      }
      case 1: // INT
      case 14: // VAR
      case 17: // DECL_TAG
        p += 4;
        break;
      case 3: // ARRAY
        p += 12;
        break;
      case 6: // ENUM
      case 13: // FUNC_PROTO
        p += 8 * vlen;
        break;
      case 15: // DATASEC
      case 19: // ENUM64
        p += 12 * vlen;
        break;
      default: // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG: nothing more
        break;
    }
  }
  return out;
}
