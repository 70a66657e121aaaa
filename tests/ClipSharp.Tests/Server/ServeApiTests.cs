using TorchSharp;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ClipSharp.Search;
using ClipSharp.Text;
using SkiaSharp;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Server;

/// <summary>The JSON API through a real Kestrel on loopback: shapes of the answers, and that they agree with the library.</summary>
[Collection("serve")]
public class ServeApiTests(ServeFixture f)
{
    static float[] Scores(JsonElement doc) => doc.GetProperty("results").EnumerateArray().Select(r => r.GetProperty("score").GetSingle()).ToArray();
    static string[] Paths(JsonElement doc) => doc.GetProperty("results").EnumerateArray().Select(r => r.GetProperty("path").GetString()!).ToArray();

    [Fact]
    public async Task HealthListsBothIndexesAndTheServerIsOnLoopback()
    {
        Assert.Equal("127.0.0.1", f.Server.Address.Host);
        Assert.NotEqual(0, f.Server.Address.Port);
        var doc = await ServeFixture.Json(await f.Http.GetAsync("/health"));
        Assert.Equal("ok", doc.GetProperty("status").GetString());
        var indexes = doc.GetProperty("indexes").EnumerateArray().ToList();
        Assert.Equal(["photos", "other"], indexes.Select(i => i.GetProperty("name").GetString()));
        // 32 shapes + the duplicate. Not served: leak.png and linked/secret.png (links inside the folder to a file outside)
        // and the image the index lists by its absolute path outside the folder.
        Assert.Equal(33, indexes[0].GetProperty("images").GetInt32());
        Assert.Equal(32, indexes[0].GetProperty("captions").GetInt32());
        Assert.Equal(4, indexes[1].GetProperty("images").GetInt32());
        Assert.False(doc.GetProperty("url_fetch").GetBoolean());
    }

    [Fact]
    public async Task TextSearchRanksAsTheLibraryDoesWithRelativePathsCaptionsAndPaging()
    {
        var doc = await ServeFixture.Json(await f.Http.GetAsync("/api/search?text=a%20red%20circle&k=33"));
        Assert.Equal(33, doc.GetProperty("count").GetInt32());
        Assert.Equal(33, doc.GetProperty("total").GetInt32());
        Assert.False(doc.GetProperty("more").GetBoolean());
        var paths = Paths(doc);
        Assert.All(paths, p => Assert.False(Path.IsPathRooted(p) || p.Contains("..") || p.Contains('\\'), p));
        Assert.DoesNotContain(paths, p => p.Contains("secret", StringComparison.Ordinal) || p == "leak.png");
        var scores = Scores(doc);
        Assert.True(scores.Zip(scores.Skip(1)).All(p => p.First >= p.Second), "scores descending");

        // The same ranking computed by hand with the library.
        using (var index = ImageIndex.Load(f.IndexPath))
        using (var q = index.EmbedText(f.Model, ClipTokenizer.FromBpeFile(ServeFixture.Vocab), "a red circle"))
        {
            var expected = index.Search(q, index.Count).Where(h => !h.Path.Contains("secret", StringComparison.Ordinal) && !h.Path.EndsWith("leak.png", StringComparison.Ordinal)).ToList();
            // Same images with the same scores; identical files (ties) may come in either order.
            var byPath = expected.ToDictionary(h => Path.GetRelativePath(f.Folder, h.Path).Replace('\\', '/'), h => h.Score);
            Assert.Equal(byPath.Keys.Order(), paths.Order());
            for (int i = 0; i < paths.Length; i++)
            {
                Assert.Equal(byPath[paths[i]], scores[i], 5);
                Assert.Equal(expected[i].Score, scores[i], 5);
            }
        }

        // Captions come from photos.captions.csv beside the index.
        var first = doc.GetProperty("results")[0];
        if (f.Captions.TryGetValue(first.GetProperty("path").GetString()!, out var caption))
            Assert.Equal(caption, first.GetProperty("caption").GetString());

        // Pages are slices of the one ranking.
        var page2 = await ServeFixture.Json(await f.Http.GetAsync("/api/search?text=a%20red%20circle&k=10&offset=10"));
        Assert.Equal(paths[10..20], Paths(page2));
        Assert.True(page2.GetProperty("more").GetBoolean());
        Assert.Equal(11, page2.GetProperty("results")[0].GetProperty("rank").GetInt32());
        var last = await ServeFixture.Json(await f.Http.GetAsync("/api/search?text=a%20red%20circle&k=10&offset=30"));
        Assert.Equal(3, last.GetProperty("count").GetInt32());
        Assert.Equal(paths[30..], Paths(last));
        Assert.False(last.GetProperty("more").GetBoolean());
    }

    [Fact]
    public async Task ImageUploadBase64AndEmbeddingQueriesAgreeAndMoreLikeThisFindsTheImageItself()
    {
        var png = f.Shape(7);
        var multipart = await ServeFixture.Json(await f.Http.PostAsync("/api/search", ServeFixture.Form(png, ("k", "5"))));
        Assert.Equal("image", multipart.GetProperty("query").GetProperty("kind").GetString());
        var top = Paths(multipart);
        Assert.Equal("shapes/shape07.png", top[0]);
        Assert.InRange(Scores(multipart)[0], 0.9999f, 1.0001f);

        var b64 = await ServeFixture.Json(await f.Http.PostAsJsonAsync("/api/search", new { image = "data:image/png;base64," + Convert.ToBase64String(png), k = 5 }));
        Assert.Equal(top, Paths(b64));

        float[] embedding;
        using (var index = ImageIndex.Load(f.IndexPath))
        using (var e = index.EmbedImage(f.Model, Path.Combine(f.Folder, "shapes/shape07.png")))
        using (var three = 3.0f.ToScalar())
        using (var scaled = e.mul(three))
            embedding = scaled.data<float>().ToArray(); // not normalised: the server normalises
        var byEmbedding = await ServeFixture.Json(await f.Http.PostAsJsonAsync("/api/search", new { embedding, k = 5 }));
        Assert.Equal(top, Paths(byEmbedding));
        for (int i = 0; i < 5; i++) Assert.Equal(Scores(multipart)[i], Scores(byEmbedding)[i], 4);

        var similar = await ServeFixture.Json(await f.Http.GetAsync("/api/search?similar=shapes%2Fshape07.png&k=5"));
        Assert.Equal(top, Paths(similar));
        Assert.Equal("similar", similar.GetProperty("query").GetProperty("kind").GetString());
    }

    [Fact]
    public async Task DeduplicationDropsTheExactCopyAndKeepsPagesConsistent()
    {
        var plain = await ServeFixture.Json(await f.Http.GetAsync("/api/search?similar=shapes%2Fshape00.png&k=2"));
        Assert.Equal(["shapes/copy-of-shape00.png", "shapes/shape00.png"], Paths(plain).Order());
        var dedup = await ServeFixture.Json(await f.Http.GetAsync("/api/search?similar=shapes%2Fshape00.png&k=33&dedup=true"));
        var kept = Paths(dedup);
        Assert.Single(kept, p => p.EndsWith("shape00.png", StringComparison.Ordinal));
        Assert.True(dedup.GetProperty("dedup").GetBoolean());
        // Every kept pair is below the threshold, and page 2 continues page 1.
        var scoresOk = await ServeFixture.Json(await f.Http.GetAsync("/api/search?similar=shapes%2Fshape00.png&k=5&offset=5&dedup=true"));
        Assert.Equal(kept[5..10], Paths(scoresOk));
    }

    [Fact]
    public async Task ZeroShotProbabilitiesAreTheModelsSoftmax()
    {
        string[] labels = ["a red circle", "a blue square", "a green triangle"];
        var doc = await ServeFixture.Json(await f.Http.PostAsync("/api/classify", ServeFixture.Form(f.Shape(0), ("labels", string.Join("\n", labels) + "\n\n"))));
        var got = doc.GetProperty("labels").EnumerateArray().ToDictionary(l => l.GetProperty("label").GetString()!, l => l.GetProperty("probability").GetSingle());
        Assert.Equal(labels.Order(), got.Keys.Order());
        Assert.Equal(1.0, got.Values.Sum(), 4);
        var probs = doc.GetProperty("labels").EnumerateArray().Select(l => l.GetProperty("probability").GetSingle()).ToArray();
        Assert.True(probs.Zip(probs.Skip(1)).All(p => p.First >= p.Second), "most probable first");

        using var scope = NewDisposeScope();
        var image = f.Model.EncodeImages([Path.Combine(f.Folder, "shapes/shape00.png")]);
        var texts = f.Model.EncodeTexts(labels.Select(l => $"a photo of {l}.").ToList(), ClipTokenizer.FromBpeFile(ServeFixture.Vocab));
        var expected = f.Model.Probabilities(image, texts);
        var templated = await ServeFixture.Json(await f.Http.PostAsJsonAsync("/api/classify",
            new { image = Convert.ToBase64String(f.Shape(0)), labels, template = "a photo of {}." }));
        var byLabel = templated.GetProperty("labels").EnumerateArray().ToDictionary(l => l.GetProperty("label").GetString()!, l => l.GetProperty("probability").GetSingle());
        for (int i = 0; i < labels.Length; i++) Assert.Equal(expected[0, i], byLabel[labels[i]], 4);
    }

    [Fact]
    public async Task ThumbnailsAreSmallJpegsWithAnETag()
    {
        var response = await f.Http.GetAsync("/api/thumbnail?path=shapes%2Fshape03.png&size=64");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("image/jpeg", response.Content.Headers.ContentType?.MediaType);
        using (var bmp = SKBitmap.Decode(await response.Content.ReadAsByteArrayAsync()))
            Assert.Equal((64, 64), (bmp.Width, bmp.Height));
        var etag = response.Headers.ETag!;
        using var again = new HttpRequestMessage(HttpMethod.Get, "/api/thumbnail?path=shapes%2Fshape03.png&size=64");
        again.Headers.IfNoneMatch.Add(etag);
        Assert.Equal(HttpStatusCode.NotModified, (await f.Http.SendAsync(again)).StatusCode);
        // Never enlarged: the 96-px images of the other index stay 96 px at the default size.
        using (var bmp = SKBitmap.Decode(await f.Http.GetByteArrayAsync("/api/thumbnail?index=other&path=o1.png")))
            Assert.Equal((96, 96), (bmp.Width, bmp.Height));
        Assert.Equal(File.ReadAllBytes(Path.Combine(f.Folder, "shapes/shape03.png")), await f.Http.GetByteArrayAsync("/api/image?path=shapes%2Fshape03.png"));
    }

    [Fact]
    public async Task TheIndexSelectorPicksTheIndexAndThePageAndOpenApiAreServed()
    {
        var other = await ServeFixture.Json(await f.Http.GetAsync("/api/search?text=a%20shape&index=other"));
        Assert.Equal("other", other.GetProperty("index").GetString());
        Assert.Equal(["o0.png", "o1.png", "o2.png", "o3.png"], Paths(other).Order());

        var page = await f.Http.GetStringAsync("/");
        Assert.Contains("<script src=\"/app.js\"", page);
        Assert.Contains("zs-labels", page);
        Assert.Contains("/api/search", await f.Http.GetStringAsync("/app.js"));

        var openapi = await ServeFixture.Json(await f.Http.GetAsync("/openapi/v1.json"));
        var paths = openapi.GetProperty("paths");
        foreach (var route in new[] { "/health", "/api/search", "/api/classify", "/api/thumbnail" })
            Assert.True(paths.TryGetProperty(route, out _), route);
        var body = paths.GetProperty("/api/search").GetProperty("post").GetProperty("requestBody").GetProperty("content");
        Assert.True(body.TryGetProperty("multipart/form-data", out _));
        Assert.True(body.TryGetProperty("application/json", out _));
    }

    [Fact]
    public async Task UrlFetchWorksOnlyWhenAllowed()
    {
        string url = new Uri(f.Server.Address, "/api/image?path=shapes%2Fshape07.png").ToString();
        var refused = await f.Http.PostAsJsonAsync("/api/search", new { image_url = url });
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Contains("--allow-url-fetch", (await ServeFixture.Json(refused)).GetProperty("error").GetString());

        await using var open = await ClipSharp.Server.ClipServer.StartAsync(f.Options(allowUrlFetch: true));
        using var http = new HttpClient { BaseAddress = open.Address };
        var doc = await ServeFixture.Json(await http.PostAsJsonAsync("/api/search", new { image_url = url, k = 1 }));
        Assert.Equal("shapes/shape07.png", Paths(doc)[0]);
        var notHttp = await http.PostAsJsonAsync("/api/search", new { image_url = "file:///etc/passwd" });
        Assert.Equal(HttpStatusCode.BadRequest, notHttp.StatusCode);
    }
}
