using System.Diagnostics;
using System.Net.Http.Json;
using Xunit.Abstractions;

namespace ClipSharp.Tests.Server;

/// <summary>A bounded load on loopback: 2,000 mixed queries, 16 in flight. Asserts zero errors; latency and memory are reported, not asserted.</summary>
[Collection("serve")]
public class ServeLoadTests(ServeFixture f, ITestOutputHelper output)
{
    [Fact]
    public async Task TwoThousandMixedQueriesSixteenAtATimeAllSucceed()
    {
        const int total = 2000, concurrency = 16;
        var shapes = Enumerable.Range(0, 8).Select(i => f.Shape(i * 4)).ToArray();
        string[] texts = ["a red circle", "a blue square", "a green triangle", "a yellow cross", "a purple shape", "something black", "white", "orange"];
        var latency = new double[total];
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        var clock = Stopwatch.StartNew();
        await Parallel.ForEachAsync(Enumerable.Range(0, total), new ParallelOptions { MaxDegreeOfParallelism = concurrency }, async (i, ct) =>
        {
            var sw = Stopwatch.StartNew();
            using var response = (i % 4) switch
            {
                0 or 1 => await f.Http.GetAsync($"/api/search?text={Uri.EscapeDataString(texts[i % texts.Length])}&k=24&offset={i % 3 * 24}", ct),
                2 => await f.Http.PostAsync("/api/search", ServeFixture.Form(shapes[i % shapes.Length], ("k", "24")), ct),
                _ => await f.Http.PostAsJsonAsync("/api/search", new { image = Convert.ToBase64String(shapes[(i / 4) % shapes.Length]), k = 12, dedup = true }, ct),
            };
            var body = await response.Content.ReadAsStringAsync(ct);
            latency[i] = sw.Elapsed.TotalMilliseconds;
            if (!response.IsSuccessStatusCode || !body.Contains("\"results\"", StringComparison.Ordinal)) failures.Add($"{i}: {(int)response.StatusCode} {body}");
        });
        double seconds = clock.Elapsed.TotalSeconds;
        Array.Sort(latency);
        double P(double q) => latency[(int)Math.Min(total - 1, Math.Ceiling(q * total) - 1)];
        using var self = Process.GetCurrentProcess();
        output.WriteLine($"{total} queries (text GET, multipart image, base64 image with dedup), {concurrency} concurrent, over {f.Server.Address}: " +
            $"{seconds:F1} s, {total / seconds:F0} queries/s, p50 {P(0.50):F1} ms, p90 {P(0.90):F1} ms, p99 {P(0.99):F1} ms, max {latency[^1]:F1} ms; " +
            $"peak working set of the test process (server and client) {self.PeakWorkingSet64 / (1 << 20)} MiB; errors {failures.Count}");
        Assert.True(failures.IsEmpty, string.Join('\n', failures.Take(5)));
    }
}
