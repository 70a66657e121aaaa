using System.Net;
using ClipSharp.Search;
using ClipSharp.Server;
using ClipSharp.Tests.Modeling;
using ClipSharp.Tests.Training;

namespace ClipSharp.Tests.Server;

/// <summary>A rebuilt index file is swapped in while the server keeps answering; a damaged one is refused and the old one stays.</summary>
public class ServeReloadTests
{
    static void Shapes(string folder, int from, int count)
    {
        Directory.CreateDirectory(folder);
        for (int i = from; i < from + count; i++) File.WriteAllBytes(Path.Combine(folder, $"s{i:D2}.png"), SyntheticShapes.Png(i, 64));
    }

    [Fact]
    public async Task ARebuiltIndexIsSwappedInWhileQueriesKeepSucceeding()
    {
        using var tmp = new Evaluation.TestData.TempDir();
        string folder = tmp["photos"], indexPath = Path.Combine(folder, "photos.index.safetensors");
        Shapes(folder, 0, 6);
        using var model = ModelParityTests.LoadGoldenModel("vit_small");
        using (var first = ImageIndex.Build(model, ImageIndex.ListFiles([folder]), out _, modelPath: ServeFixture.ModelPath))
            first.Save(indexPath);

        await using var server = await ClipServer.StartAsync(new ServeOptions { Indexes = [indexPath], VocabPath = ServeFixture.Vocab, Port = 0 });
        using var http = new HttpClient { BaseAddress = server.Address };
        var reloaded = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        var failed = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        server.IndexReloaded += (_, generation) => reloaded.TrySetResult(generation);
        server.IndexReloadFailed += (_, reason) => failed.TrySetResult(reason);

        // Queries run throughout the rebuild, and 30 more after the swap was seen (bounded in count either way).
        var statuses = new List<HttpStatusCode>();
        var counts = new HashSet<int>();
        var queries = Task.Run(async () =>
        {
            int after = 0;
            for (int n = 0; n < 20_000 && after < 30; n++)
            {
                if (reloaded.Task.IsCompleted) after++;
                using var response = await http.GetAsync("/api/search?text=a%20shape&k=50");
                statuses.Add(response.StatusCode);
                if (response.IsSuccessStatusCode)
                    counts.Add((await ServeFixture.Json(response)).GetProperty("total").GetInt32());
            }
        });

        Shapes(folder, 6, 3);
        using (var previous = ImageIndex.Load(indexPath))
        using (var rebuilt = ImageIndex.Build(model, ImageIndex.ListFiles([folder]), out var report, previous, ServeFixture.ModelPath))
        {
            Assert.Equal((3, 6), (report.Encoded, report.Reused));
            rebuilt.Save(indexPath); // a temporary file renamed over the old one
        }
        long generation = await reloaded.Task.WaitAsync(TimeSpan.FromMinutes(2));
        await queries.WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Equal(2, generation);
        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));
        Assert.Contains(9, counts);
        Assert.Subset(new HashSet<int> { 6, 9 }, counts);
        var health = await ServeFixture.Json(await http.GetAsync("/health"));
        Assert.Equal(9, health.GetProperty("indexes")[0].GetProperty("images").GetInt32());

        // Garbage written over the index in place: refused, and generation 2 keeps serving.
        await File.WriteAllBytesAsync(indexPath, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        string reason = await failed.Task.WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Contains(indexPath, reason);
        health = await ServeFixture.Json(await http.GetAsync("/health"));
        Assert.Equal(2, health.GetProperty("indexes")[0].GetProperty("generation").GetInt64());
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/api/search?text=a%20shape")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/api/thumbnail?path=s07.png")).StatusCode);
    }
}
