using System.Buffers.Binary;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using ClipSharp.Tests.Training;
using SkiaSharp;
using Xunit.Abstractions;

namespace ClipSharp.Tests.Server;

/// <summary>
/// Every bad upload and every path that tries to leave the indexed folder, each with the status it must get: always a
/// 4xx with a JSON error, never a 5xx, never a file from outside. The table is printed (and copied into docs/serve.md).
/// </summary>
[Collection("serve")]
public class HostileInputTests(ServeFixture f, ITestOutputHelper output)
{
    static readonly Lazy<byte[]> Bomb = new(() => PngBomb(2100, 2000));

    static byte[] Ascii(string s) => Encoding.ASCII.GetBytes(s);

    /// <summary>A valid PNG whose IDAT inflates to width × height × 3 bytes of zeros (tiny on the wire).</summary>
    internal static byte[] PngBomb(int width, int height, bool headerOnly = false)
    {
        using var ms = new MemoryStream();
        ms.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(ihdr, (uint)width);
        BinaryPrimitives.WriteUInt32BigEndian(ihdr.AsSpan(4), (uint)height);
        ihdr[8] = 8; ihdr[9] = 2;
        Chunk(ms, "IHDR", ihdr);
        if (headerOnly) return ms.ToArray();
        using (var raw = new MemoryStream())
        {
            using (var z = new ZLibStream(raw, CompressionLevel.Optimal, leaveOpen: true))
            {
                var row = new byte[1 + width * 3];
                for (int y = 0; y < height; y++) z.Write(row);
            }
            Chunk(ms, "IDAT", raw.ToArray());
        }
        Chunk(ms, "IEND", []);
        return ms.ToArray();
    }

    static void Chunk(Stream s, string type, byte[] data)
    {
        Span<byte> len = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(len, (uint)data.Length);
        s.Write(len);
        var typed = Ascii(type).Concat(data).ToArray();
        s.Write(typed);
        BinaryPrimitives.WriteUInt32BigEndian(len, Crc32(typed));
        s.Write(len);
    }

    static uint Crc32(byte[] data)
    {
        uint c = 0xFFFFFFFF;
        foreach (var b in data)
        {
            c ^= b;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
        }
        return ~c;
    }

    static byte[] Jpeg(int size = 64)
    {
        using var bmp = new SKBitmap(size, size);
        bmp.Erase(new SKColor(200, 60, 60));
        using var img = SKImage.FromBitmap(bmp);
        using var data = img.Encode(SKEncodedImageFormat.Jpeg, 90);
        return data.ToArray();
    }

    /// <summary>A real JPEG whose SOF0 header claims 60000 × 60000 pixels.</summary>
    static byte[] JpegClaimingHugeSize()
    {
        var j = Jpeg();
        for (int i = 2; i + 9 < j.Length; i++)
            if (j[i] == 0xFF && j[i + 1] is 0xC0 or 0xC2)
            {
                BinaryPrimitives.WriteUInt16BigEndian(j.AsSpan(i + 5), 60000);
                BinaryPrimitives.WriteUInt16BigEndian(j.AsSpan(i + 7), 60000);
                return j;
            }
        throw new InvalidOperationException("no SOF marker");
    }

    static byte[] GifClaimingHugeSize() =>
        [.. Ascii("GIF89a"), 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x2C, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3B];

    static HttpContent Upload(byte[] bytes) => ServeFixture.Form(bytes);
    static HttpContent Classify(byte[] bytes) => ServeFixture.Form(bytes, ("labels", "a\nb"));
    static HttpContent JsonBody(string json) => new StringContent(json, Encoding.UTF8, "application/json");

    /// <summary>(name, method, url, body, expected status). Bodies are built per run.</summary>
    public static IEnumerable<(string Name, HttpMethod Method, string Url, Func<ServeFixture, HttpContent?> Body, int Status)> Cases()
    {
        var post = HttpMethod.Post;
        var get = HttpMethod.Get;
        // Uploads.
        yield return ("upload: a text file", post, "/api/search", _ => Upload(Ascii("hello, I am not an image")), 400);
        yield return ("upload: empty file", post, "/api/search", _ => Upload([]), 400);
        yield return ("upload: truncated PNG", post, "/api/search", f => Upload(f.Shape(1)[..(f.Shape(1).Length * 2 / 3)]), 400);
        yield return ("upload: PNG signature only", post, "/api/search", _ => Upload([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]), 400);
        yield return ("upload: truncated JPEG", post, "/api/search", _ => Upload(Jpeg()[..200]), 400);
        yield return ("upload: PNG bomb (valid PNG, 2100x2000 > the 4 MP limit, 13 KB)", post, "/api/search", _ => Upload(Bomb.Value), 413);
        yield return ("upload: PNG header claiming 100000x100000", post, "/api/search", _ => Upload(PngBomb(100000, 100000, headerOnly: true)), 413);
        yield return ("upload: JPEG header claiming 60000x60000", post, "/api/search", _ => Upload(JpegClaimingHugeSize()), 413);
        yield return ("upload: GIF header claiming 65535x65535", post, "/api/search", _ => Upload(GifClaimingHugeSize()), 413);
        yield return ("upload: 2 MiB over the 1 MiB limit", post, "/api/search", _ => Upload(new byte[2 << 20]), 413);
        yield return ("upload: base64 over the limit", post, "/api/search", _ => JsonBody($"{{\"image\":\"{Convert.ToBase64String(new byte[(1 << 20) + 100])}\"}}"), 413);
        yield return ("upload: invalid base64", post, "/api/search", _ => JsonBody("{\"image\":\"not*base64!\"}"), 400);
        yield return ("upload: 'image' sent as a text field", post, "/api/search", _ => ServeFixture.Form(null, ("image", "abc")), 400);
        yield return ("classify: a text file", post, "/api/classify", _ => Classify(Ascii("plain text")), 400);
        yield return ("classify: PNG bomb", post, "/api/classify", _ => Classify(Bomb.Value), 413);
        yield return ("classify: no labels", post, "/api/classify", f => ServeFixture.Form(f.Shape(0), ("labels", "\n \n")), 400);
        yield return ("classify: no image", post, "/api/classify", _ => ServeFixture.Form(null, ("labels", "a")), 400);
        yield return ("classify: template without {}", post, "/api/classify", f => ServeFixture.Form(f.Shape(0), ("labels", "a"), ("template", "a photo")), 400);
        yield return ("classify: 501 labels", post, "/api/classify", f => ServeFixture.Form(f.Shape(0), ("labels", string.Join("\n", Enumerable.Range(0, 501)))), 400);
        // Malformed requests.
        yield return ("json: malformed", post, "/api/search", _ => JsonBody("{\"text\": "), 400);
        yield return ("json: unknown field", post, "/api/search", _ => JsonBody("{\"txt\": \"a cat\"}"), 400);
        yield return ("json: null body", post, "/api/search", _ => JsonBody("null"), 400);
        yield return ("body: text/plain", post, "/api/search", _ => new StringContent("a cat"), 415);
        yield return ("body: none", post, "/api/search", _ => null, 415);
        yield return ("query: two at once", post, "/api/search", f => ServeFixture.Form(f.Shape(0), ("text", "a cat")), 400);
        yield return ("query: none", get, "/api/search", _ => null, 400);
        yield return ("query: empty text", get, "/api/search?text=%20", _ => null, 400);
        yield return ("query: 3000-character text", get, "/api/search?text=" + new string('a', 3000), _ => null, 400);
        yield return ("query: k=0", get, "/api/search?text=a&k=0", _ => null, 400);
        yield return ("query: k=-1", get, "/api/search?text=a&k=-1", _ => null, 400);
        yield return ("query: k=100000", get, "/api/search?text=a&k=100000", _ => null, 400);
        yield return ("query: k=abc", get, "/api/search?text=a&k=abc", _ => null, 400);
        yield return ("query: offset=-5", get, "/api/search?text=a&offset=-5", _ => null, 400);
        yield return ("query: offset beyond the result limit", get, "/api/search?text=a&offset=2000000000", _ => null, 400);
        yield return ("query: dedup=maybe", get, "/api/search?text=a&dedup=maybe", _ => null, 400);
        yield return ("query: embedding of the wrong width", post, "/api/search", _ => JsonBody("{\"embedding\":[1,2,3]}"), 400);
        yield return ("query: all-zero embedding", post, "/api/search", _ => JsonBody($"{{\"embedding\":[{string.Join(",", Enumerable.Repeat("0", 64))}]}}"), 400);
        yield return ("query: unknown index", get, "/api/search?text=a&index=nope", _ => null, 404);
        yield return ("query: similar to a path outside", get, "/api/search?similar=..%2Fsecret%2Fsecret.png", _ => null, 404);
        yield return ("query: similar to a link pointing outside", get, "/api/search?similar=leak.png", _ => null, 404);
        yield return ("query: similar to a non-indexed file", get, "/api/search?similar=notes.txt", _ => null, 404);
        yield return ("form: unknown field", post, "/api/search", f => ServeFixture.Form(f.Shape(0), ("evil", "1")), 400);
        yield return ("route: unknown", get, "/api/nope", _ => null, 404);
        yield return ("route: wrong method", post, "/health", _ => new StringContent(""), 405);
        yield return ("thumbnail: size=100000", get, "/api/thumbnail?path=shapes%2Fshape00.png&size=100000", _ => null, 400);
        yield return ("thumbnail: no path", get, "/api/thumbnail", _ => null, 400);
        // Paths that try to leave the folder, in both file routes.
        foreach (var route in new[] { "/api/thumbnail", "/api/image" })
        {
            foreach (var (what, p) in TraversalPaths())
                yield return ($"{route[5..]}: {what}", get, $"{route}?path={p}", _ => null, 404);
        }
    }

    static IEnumerable<(string What, string Encoded)> TraversalPaths()
    {
        yield return ("../ to a sibling folder", "../secret/secret.png");
        yield return ("../ URL-encoded", "..%2Fsecret%2Fsecret.png");
        yield return ("dots URL-encoded", "%2e%2e%2fsecret%2fsecret.png");
        yield return ("double-encoded", "%252e%252e%252fsecret%252fsecret.png");
        yield return ("inner ../", "shapes%2F..%2F..%2Fsecret%2Fsecret.png");
        yield return ("absolute /etc/passwd", "%2Fetc%2Fpasswd");
        yield return ("file:// URL", "file%3A%2F%2F%2Fetc%2Fpasswd");
        yield return ("backslashes", "..%5Csecret%5Csecret.png");
        yield return ("./ segment", "shapes%2F.%2Fshape00.png");
        yield return ("empty segment", "shapes%2F%2Fshape00.png");
        yield return ("NUL byte", "shapes%2Fshape00.png%00.txt");
        yield return ("symlink file pointing outside", "leak.png");
        yield return ("symlinked folder pointing outside", "linked%2Fsecret.png");
        yield return ("indexed by absolute path, outside", "secret.png");
        yield return ("not an image (notes.txt)", "notes.txt");
        yield return ("the index file itself", "photos.index.safetensors");
        yield return ("the captions table", "photos.captions.csv");
    }

    [Fact]
    public async Task EveryHostileRequestGetsItsStatusAndAJsonErrorNeverAServerError()
    {
        var rows = new List<string>();
        var wrong = new List<string>();
        foreach (var (name, method, url, body, status) in Cases())
        {
            using var request = new HttpRequestMessage(method, url) { Content = body(f) };
            using var response = await f.Http.SendAsync(request);
            int got = (int)response.StatusCode;
            string text = await response.Content.ReadAsStringAsync();
            bool json = response.Content.Headers.ContentType?.MediaType == "application/json" && text.Contains("\"error\"", StringComparison.Ordinal);
            rows.Add($"| {name} | {got} |");
            if (got != status || !json) wrong.Add($"{name}: expected {status}, got {got} {text}");
            Assert.DoesNotContain("root:", text); // /etc/passwd
        }
        output.WriteLine(string.Join('\n', rows));
        Assert.True(wrong.Count == 0, string.Join('\n', wrong));
    }

    [Fact]
    public async Task AForeignHostHeaderIsRefused()
    {
        // DNS rebinding: a page on another name that resolves to 127.0.0.1 sends its own name as Host.
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/search?text=a");
        request.Headers.Host = "attacker.example";
        using var response = await f.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        using var local = new HttpRequestMessage(HttpMethod.Get, "/health");
        local.Headers.Host = $"localhost:{f.Server.Address.Port}";
        Assert.Equal(HttpStatusCode.OK, (await f.Http.SendAsync(local)).StatusCode);
    }

    [Fact]
    public async Task TheServerStillAnswersAfterTheHostileList()
    {
        foreach (var (_, method, url, body, _) in Cases().Take(12))
        {
            using var request = new HttpRequestMessage(method, url) { Content = body(f) };
            using var _ = await f.Http.SendAsync(request);
        }
        var ok = await f.Http.PostAsync("/api/search", ServeFixture.Form(f.Shape(3), ("k", "1")));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal("shapes/shape03.png", (await ServeFixture.Json(ok)).GetProperty("results")[0].GetProperty("path").GetString());
    }
}
