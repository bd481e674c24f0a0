import Foundation

/// One instalment plan offered for a purchase: months, monthly payment, total cost.
public struct InstalmentPlan: Codable, Sendable, Equatable {
    /// Number of monthly instalments.
    public var months: Int
    /// Each month's payment in minor units (the last one absorbs rounding).
    public var monthlyMinor: Int64
    /// The last month's payment in minor units.
    public var lastMonthMinor: Int64
    /// The fee for the whole plan in minor units.
    public var feeMinor: Int64
    /// Amount plus fee, in minor units.
    public var totalMinor: Int64

    enum CodingKeys: String, CodingKey {
        case months, monthlyMinor = "monthly_minor", lastMonthMinor = "last_month_minor", feeMinor = "fee_minor", totalMinor = "total_minor"
    }
}

/// Computes instalment plans: a flat fee per month, in basis points of the amount, rounded half up.
public struct InstalmentCalculator: Sendable, Equatable {
    /// Plan lengths offered, in months.
    public var months: [Int]
    /// Fee per month in basis points of the amount (e.g. 60 = 0.60 % a month).
    public var monthlyFeeBasisPoints: Int

    /// Creates a calculator (defaults: 3, 6 and 12 months at 0.60 % a month).
    public init(months: [Int] = [3, 6, 12], monthlyFeeBasisPoints: Int = 60) {
        self.months = months.filter { $0 > 0 }
        self.monthlyFeeBasisPoints = max(0, monthlyFeeBasisPoints)
    }

    /// The plans for `amountMinor`, one per length; empty for non-positive amounts.
    public func plans(amountMinor: Int64) -> [InstalmentPlan] {
        guard amountMinor > 0 else { return [] }
        return months.map { n in
            let bp = Int64(monthlyFeeBasisPoints) * Int64(n)
            let fee = (amountMinor * bp + 5_000) / 10_000
            let total = amountMinor + fee
            let monthly = total / Int64(n)
            let last = total - monthly * Int64(n - 1)
            return InstalmentPlan(months: n, monthlyMinor: monthly, lastMonthMinor: last, feeMinor: fee, totalMinor: total)
        }
    }
}
