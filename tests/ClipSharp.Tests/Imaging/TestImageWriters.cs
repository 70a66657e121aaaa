using System.Buffers.Binary;
using System.IO.Compression;

namespace ClipSharp.Tests.Imaging;

/// <summary>Hand-written encoders for tiny PNG, GIF and BMP files in modes SkiaSharp cannot encode.</summary>
internal static class TestImageWriters
{
    static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    static uint Crc(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFFu;
        foreach (var b in data) c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }

    static void Chunk(Stream s, string type, ReadOnlySpan<byte> data)
    {
        Span<byte> len = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(len, data.Length);
        s.Write(len);
        var td = new byte[4 + data.Length];
        System.Text.Encoding.ASCII.GetBytes(type, td);
        data.CopyTo(td.AsSpan(4));
        s.Write(td);
        BinaryPrimitives.WriteUInt32BigEndian(len, Crc(td));
        s.Write(len);
    }

    /// <summary>A PNG with the given IHDR fields and already packed scanlines (filter byte 0 is added per row).</summary>
    public static byte[] Png(int width, int height, int bitDepth, int colourType, byte[][] rows, byte[]? plte = null, byte[]? trns = null, bool includeData = true)
    {
        var ms = new MemoryStream();
        ms.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = (byte)bitDepth;
        ihdr[9] = (byte)colourType;
        Chunk(ms, "IHDR", ihdr);
        if (plte is not null) Chunk(ms, "PLTE", plte);
        if (trns is not null) Chunk(ms, "tRNS", trns);
        if (includeData)
        {
            var raw = new MemoryStream();
            using (var z = new ZLibStream(raw, CompressionLevel.Optimal, leaveOpen: true))
                foreach (var r in rows) { z.WriteByte(0); z.Write(r); }
            Chunk(ms, "IDAT", raw.ToArray());
        }
        Chunk(ms, "IEND", []);
        return ms.ToArray();
    }

    /// <summary>
    /// A single-frame GIF with a global colour table of 256 entries (palette padded with zeros) and 8-bit LZW
    /// codes written with a clear code every 100 pixels, so the code width stays 9 bits.
    /// </summary>
    public static byte[] Gif(int width, int height, byte[] paletteRgb, byte[] indices, int? transparentIndex = null)
    {
        var ms = new MemoryStream();
        ms.Write("GIF89a"u8);
        Span<byte> u16 = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(u16, (ushort)width); ms.Write(u16);
        BinaryPrimitives.WriteUInt16LittleEndian(u16, (ushort)height); ms.Write(u16);
        ms.WriteByte(0x80 | 0x70 | 7); // global table, 8-bit colour resolution, 256 entries
        ms.WriteByte(0);
        ms.WriteByte(0);
        var table = new byte[768];
        paletteRgb.CopyTo(table, 0);
        ms.Write(table);
        if (transparentIndex is int t)
            ms.Write([0x21, 0xF9, 4, 1, 0, 0, (byte)t, 0]);
        ms.WriteByte(0x2C);
        ms.Write(new byte[4]);
        BinaryPrimitives.WriteUInt16LittleEndian(u16, (ushort)width); ms.Write(u16);
        BinaryPrimitives.WriteUInt16LittleEndian(u16, (ushort)height); ms.Write(u16);
        ms.WriteByte(0);
        ms.WriteByte(8);
        // LZW codes, 9 bits each, packed least significant bit first.
        var codes = new List<int> { 256 };
        for (int i = 0; i < indices.Length; i++)
        {
            if (i > 0 && i % 100 == 0) codes.Add(256);
            codes.Add(indices[i]);
        }
        codes.Add(257);
        var packed = new List<byte>();
        int acc = 0, bits = 0;
        foreach (var c in codes)
        {
            acc |= c << bits;
            bits += 9;
            while (bits >= 8) { packed.Add((byte)acc); acc >>= 8; bits -= 8; }
        }
        if (bits > 0) packed.Add((byte)acc);
        for (int i = 0; i < packed.Count; i += 255)
        {
            int n = Math.Min(255, packed.Count - i);
            ms.WriteByte((byte)n);
            ms.Write(packed.GetRange(i, n).ToArray());
        }
        ms.WriteByte(0);
        ms.WriteByte(0x3B);
        return ms.ToArray();
    }

    /// <summary>An uncompressed bottom-up BMP with a 40-byte info header. Rows are given top-down, already packed.</summary>
    public static byte[] Bmp(int width, int height, int bits, byte[][] rowsTopDown, byte[]? paletteRgb = null)
    {
        int colours = paletteRgb is null ? 0 : paletteRgb.Length / 3;
        int stride = (rowsTopDown[0].Length + 3) & ~3;
        int offset = 14 + 40 + colours * 4;
        var d = new byte[offset + stride * height];
        d[0] = (byte)'B'; d[1] = (byte)'M';
        BinaryPrimitives.WriteInt32LittleEndian(d.AsSpan(2), d.Length);
        BinaryPrimitives.WriteInt32LittleEndian(d.AsSpan(10), offset);
        BinaryPrimitives.WriteInt32LittleEndian(d.AsSpan(14), 40);
        BinaryPrimitives.WriteInt32LittleEndian(d.AsSpan(18), width);
        BinaryPrimitives.WriteInt32LittleEndian(d.AsSpan(22), height);
        BinaryPrimitives.WriteInt16LittleEndian(d.AsSpan(26), 1);
        BinaryPrimitives.WriteInt16LittleEndian(d.AsSpan(28), (short)bits);
        BinaryPrimitives.WriteInt32LittleEndian(d.AsSpan(46), colours);
        for (int i = 0; i < colours; i++)
        {
            d[54 + 4 * i] = paletteRgb![3 * i + 2];
            d[54 + 4 * i + 1] = paletteRgb[3 * i + 1];
            d[54 + 4 * i + 2] = paletteRgb[3 * i];
        }
        for (int y = 0; y < height; y++)
            rowsTopDown[height - 1 - y].CopyTo(d, offset + y * stride);
        return d;
    }
}
